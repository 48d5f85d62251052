package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable emulator clock.
type fakeClock struct{ ns atomic.Int64 }

var clockBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time         { return clockBase.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) at(d time.Duration)     { c.ns.Store(int64(d)) }
func (c *fakeClock) opts(o Options) Options { o.Now = c.now; return o }

func TestLatencyJitterDraws(t *testing.T) {
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey, Latency: time.Second, LatencyJitter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := s.delay()
		if d < time.Second || d >= 3*time.Second {
			t.Fatalf("delay %s outside [1s, 3s)", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	// 1,000 uniform draws cover the range: the chance of missing a quarter
	// at either end is (3/4)^1000.
	if lo > 1500*time.Millisecond || hi < 2500*time.Millisecond {
		t.Errorf("draws span [%s, %s], want about [1s, 3s)", lo, hi)
	}
	// No jitter: the latency alone.
	s2, _ := New(Options{PartnerID: testPartner, APIKey: testKey, Latency: 40 * time.Millisecond})
	if d := s2.delay(); d != 40*time.Millisecond {
		t.Errorf("delay without jitter %s", d)
	}
}

func TestLatencyJitterServed(t *testing.T) {
	// Requests wait on their own timers: 8 at once, each 100-300 ms, are
	// all answered well before 8 × 100 ms would pass one after the other.
	s, hs := start(t, Options{Latency: 100 * time.Millisecond, LatencyJitter: 200 * time.Millisecond})
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range 8 {
		wg.Go(func() {
			t1 := time.Now()
			r := mustSend(t, hs.URL, fields("jitter-"+string(rune('a'+i))))
			if r.status != 200 {
				t.Errorf("status %d", r.status)
			}
			if d := time.Since(t1); d < 100*time.Millisecond {
				t.Errorf("answered after %s, want at least the latency", d)
			}
		})
	}
	wg.Wait()
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("8 concurrent requests took %s", d)
	}
	if st := s.Stats(); st.MaxInFlight < 2 || st.MaxInFlight > 8 || st.Enrolled != 8 {
		t.Errorf("Stats %+v: want 2 to 8 in flight at once", st)
	}
}

func TestMaxInFlight(t *testing.T) {
	// Requests held by the latency overlap; the sandbox sees them all in
	// flight at once, and none after.
	s, hs := start(t, Options{Latency: 300 * time.Millisecond})
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { mustSend(t, hs.URL, fields("inflight-"+string(rune('a'+i)))) })
	}
	wg.Wait()
	st := s.Stats()
	if st.MaxInFlight < 2 || st.MaxInFlight > n {
		t.Errorf("MaxInFlight %d, want 2 to %d", st.MaxInFlight, n)
	}
	s.mu.Lock()
	left := s.inFlight
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests still counted in flight", left)
	}
	if got := getState(t, hs.URL).Stats.MaxInFlight; got != st.MaxInFlight {
		t.Errorf("state max_in_flight %d, Stats %d", got, st.MaxInFlight)
	}
}

func TestOutage(t *testing.T) {
	for _, answer := range []string{"reset", "503"} {
		t.Run(answer, func(t *testing.T) {
			var c fakeClock
			s, hs := start(t, c.opts(Options{DownAfter: 10 * time.Second, DownFor: 5 * time.Second, DownAnswer: answer}))
			client := &http.Client{Timeout: 5 * time.Second}
			post := func(user string) (int, error) {
				r, err := http.NewRequest(http.MethodPost, hs.URL+BackfillPath, bytes.NewReader(mustJSON(fields(user))))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(r)
				if err != nil {
					return 0, err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			c.at(time.Second)
			if code, err := post("before"); code != 200 || err != nil {
				t.Fatalf("before the outage: %d %v", code, err)
			}
			if st := getState(t, hs.URL).Settings; st.Down || !st.DownFrom.Equal(clockBase.Add(10*time.Second)) {
				t.Errorf("settings before the outage %+v", st)
			}
			// Three requests within one second of the outage, one more later.
			for i, at := range []time.Duration{10 * time.Second, 10200 * time.Millisecond, 10900 * time.Millisecond, 12500 * time.Millisecond} {
				c.at(at)
				code, err := post("during")
				switch answer {
				case "reset":
					if err == nil {
						t.Errorf("request %d during the outage got HTTP %d, want a reset", i, code)
					}
				case "503":
					if err != nil || code != 503 {
						t.Errorf("request %d during the outage: %d %v, want 503", i, code, err)
					}
				}
			}
			if !getState(t, hs.URL).Settings.Down {
				t.Error("settings do not say down")
			}
			c.at(15 * time.Second) // the outage is over
			if code, err := post("during"); code != 200 || err != nil {
				t.Fatalf("after the outage: %d %v", code, err)
			}
			st := s.Stats()
			if st.Down != 4 || st.MaxDownPerSecond != 3 || st.Requests != 6 || st.Enrolled != 2 {
				t.Errorf("Stats %+v: want 4 down, at most 3 in a second, 6 requests, 2 enrolled", st)
			}
			if got := getState(t, hs.URL).DownSeconds; !slices.Equal(got, []int{3, 0, 1}) {
				t.Errorf("DownSeconds %v, want [3 0 1]", got)
			}
			if s.Enrolled()["during"] != 1 {
				t.Error("a request during the outage enrolled its user, or the one after did not")
			}
		})
	}
}

func TestThrottleFirst(t *testing.T) {
	s, hs := start(t, Options{ThrottleFirst: 3, RetryAfter: 2 * time.Second})
	for i := range 3 {
		r := mustSend(t, hs.URL, fields("tf-a"))
		if r.status != 429 || r.header.Get("Retry-After") != "2" {
			t.Fatalf("request %d of the user: %d, Retry-After %q", i, r.status, r.header.Get("Retry-After"))
		}
	}
	// Another user starts its own count; the first is now let through.
	if r := mustSend(t, hs.URL, fields("tf-b")); r.status != 429 {
		t.Errorf("first request of another user: %d", r.status)
	}
	if r := mustSend(t, hs.URL, fields("tf-a")); r.status != 200 {
		t.Errorf("fourth request: %d %s", r.status, r.raw)
	}
	// Unauthorised requests do not count.
	bad := fields("tf-c")
	bad["signature"] = "AAAA"
	mustSend(t, hs.URL, bad)
	if st := s.Stats(); st.Throttled != 4 || st.Enrolled != 1 || st.Unauthorized != 1 {
		t.Errorf("Stats %+v", st)
	}
	s.mu.Lock()
	c := s.tries["tf-c"]
	s.mu.Unlock()
	if c != 0 {
		t.Errorf("an unauthorised request counted as a try")
	}
}

// postControl sends body to the control route and returns the status and
// the answer.
func postControl(t *testing.T, base, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+ControlPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("control answer: %v", err)
	}
	return resp.StatusCode, m
}

func TestControlQuota(t *testing.T) {
	var c fakeClock
	s, hs := start(t, c.opts(Options{Quota: 10, QuotaBurst: 1}))
	if r := mustSend(t, hs.URL, fields("cq-1")); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	// Halve the quota: a token now takes 200 ms, not 100.
	code, m := postControl(t, hs.URL, `{"quota":5}`)
	if code != 200 || m["quota"] != 5.0 || m["quota_burst"] != 1.0 {
		t.Fatalf("control: %d %v", code, m)
	}
	c.at(150 * time.Millisecond)
	if r := mustSend(t, hs.URL, fields("cq-2")); r.status != 429 {
		t.Errorf("150 ms after a token at 5/s: %d", r.status)
	}
	c.at(250 * time.Millisecond)
	if r := mustSend(t, hs.URL, fields("cq-2")); r.status != 200 {
		t.Errorf("250 ms after a token at 5/s: %d", r.status)
	}
	// No quota at all, then a quota again from none.
	postControl(t, hs.URL, `{"quota":0}`)
	for i := range 5 {
		if r := mustSend(t, hs.URL, fields("cq-free-"+string(rune('a'+i)))); r.status != 200 {
			t.Errorf("without a quota: %d", r.status)
		}
	}
	if code, m := postControl(t, hs.URL, `{"quota":20,"quota_burst":3}`); code != 200 || m["quota_burst"] != 3.0 {
		t.Fatalf("control: %d %v", code, m)
	}
	ok := 0
	for i := range 5 {
		if mustSend(t, hs.URL, fields("cq-new-"+string(rune('a'+i)))).status == 200 {
			ok++
		}
	}
	if ok != 3 {
		t.Errorf("%d of 5 passed a new full bucket of 3", ok)
	}
	if st := getState(t, hs.URL).Settings; st.Quota != 20 || st.QuotaBurst != 3 {
		t.Errorf("settings %+v", st)
	}
	if st := s.Stats(); st.QuotaRefused != 3 {
		t.Errorf("QuotaRefused %d, want 3", st.QuotaRefused)
	}
}

func TestControlDownAndKnobs(t *testing.T) {
	var c fakeClock
	s, hs := start(t, c.opts(Options{DownAnswer: "503"}))
	s.downSeconds = []int{7, 7} // as if an earlier outage had been counted
	if code, m := postControl(t, hs.URL, `{"down_for":"60s"}`); code != 200 || m["down"] != true {
		t.Fatalf("control: %d %v", code, m)
	}
	c.at(30 * time.Second)
	resp, err := http.Post(hs.URL+BackfillPath, "application/json", bytes.NewReader(mustJSON(fields("cd"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("during a controlled outage: %d", resp.StatusCode)
	}
	if got := s.DownSeconds(); len(got) != 31 || got[30] != 1 || got[0] != 0 {
		t.Errorf("DownSeconds %v: want the new outage's alone, one request in its 31st second", got)
	}
	postControl(t, hs.URL, `{"down_for":"0s"}`)
	if r := mustSend(t, hs.URL, fields("cd")); r.status != 200 {
		t.Errorf("after ending the outage: %d", r.status)
	}
	// Latency, jitter and fault rates.
	code, m := postControl(t, hs.URL, `{"latency":"1s","latency_jitter":"2s","throttle_rate":1,"fail_rate":0}`)
	if code != 200 || m["latency"] != "1s" || m["latency_jitter"] != "2s" || m["throttle_rate"] != 1.0 {
		t.Fatalf("control: %d %v", code, m)
	}
	if d := s.delay(); d < time.Second || d >= 3*time.Second {
		t.Errorf("delay %s after the control", d)
	}
	postControl(t, hs.URL, `{"latency":"0s","latency_jitter":"0s"}`)
	if r := mustSend(t, hs.URL, fields("cd-2")); r.status != 429 {
		t.Errorf("throttle rate 1: %d", r.status)
	}
}

func TestControlRefusals(t *testing.T) {
	s, hs := start(t, Options{Quota: 10, DropBeforeRate: 0.5})
	for _, body := range []string{
		`{"quota":-1}`, `{"quota_burst":0}`, `{"down_for":"soon"}`, `{"latency":"-1s"}`,
		`{"fail_rate":1.5}`, `{"throttle_rate":0.6}`, `{"bogus":1}`, `not json`,
	} {
		if code, m := postControl(t, hs.URL, body); code != 400 || m["error"] == nil {
			t.Errorf("%s: %d %v, want 400 with an error", body, code, m)
		}
	}
	// A refused control changes nothing, not even its valid fields.
	postControl(t, hs.URL, `{"quota":3,"fail_rate":2}`)
	if st := s.Settings(); st.Quota != 10 || st.FailRate != 0 {
		t.Errorf("settings changed by a refused control: %+v", st)
	}
	resp, err := http.Get(hs.URL + ControlPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET control: %d", resp.StatusCode)
	}
}

func TestControlLoopbackOnly(t *testing.T) {
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		remote string
		want   int
	}{{"127.0.0.1:5000", 200}, {"[::1]:5000", 200}, {"192.0.2.7:5000", 403}, {"[2001:db8::1]:5000", 403}} {
		rec := &recorder{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodPost, ControlPath, strings.NewReader(`{"quota":5}`))
		req.RemoteAddr = c.remote
		s.ServeHTTP(rec, req)
		if rec.status != c.want {
			t.Errorf("from %s: HTTP %d, want %d", c.remote, rec.status, c.want)
		}
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

func TestOutageOptionsValidated(t *testing.T) {
	for _, o := range []Options{
		{LatencyJitter: -1}, {DownAfter: -1}, {DownFor: -1}, {ThrottleFirst: -1}, {DownAnswer: "hang"},
	} {
		o.PartnerID, o.APIKey = testPartner, testKey
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
