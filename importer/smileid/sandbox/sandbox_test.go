package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

const (
	testPartner = "partner-042"
	testKey     = "SECRET-api-key-9f8e7d"
)

var (
	jpegPhoto = append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F'}, bytes.Repeat([]byte{7}, 20<<10)...)
	pngPhoto  = append([]byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13}, bytes.Repeat([]byte{9}, 1000)...)
	gifPhoto  = append([]byte("GIF89a"), bytes.Repeat([]byte{1}, 100)...)
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// start serves a new Server with the test credentials merged into opts.
func start(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.PartnerID == "" {
		opts.PartnerID = testPartner
	}
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// fields returns a valid, signed request body for user.
func fields(user string) map[string]any {
	ts := signature.Timestamp(time.Now())
	return map[string]any{
		"partner_id":      testPartner,
		"timestamp":       ts,
		"signature":       signature.Sign(testKey, testPartner, ts),
		"user_id":         user,
		"user_created_at": "2021-06-01",
		"photo":           b64(jpegPhoto),
	}
}

type result struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// send posts body (a []byte or a value to marshal) to the API route and
// checks that the answer never contains the API key.
func send(t *testing.T, client *http.Client, base string, body any) (result, error) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	resp, err := client.Post(base+BackfillPath, "application/json", bytes.NewReader(raw))
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode, header: resp.Header}
	if r.raw, err = io.ReadAll(resp.Body); err != nil {
		return r, err
	}
	if bytes.Contains(r.raw, []byte(testKey)) {
		t.Errorf("answer contains the API key: %s", r.raw)
	}
	if err := json.Unmarshal(r.raw, &r.body); err != nil {
		t.Errorf("answer is not a JSON object: %v: %q", err, r.raw)
	}
	return r, nil
}

func mustSend(t *testing.T, base string, body any) result {
	t.Helper()
	r, err := send(t, nil, base, body)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	return r
}

func TestSuccessShapeAndSignature(t *testing.T) {
	fixed := time.Date(2024, 3, 5, 10, 11, 12, 345_000_000, time.UTC)
	s, hs := start(t, Options{Now: func() time.Time { return fixed }})
	for i, photo := range [][]byte{jpegPhoto, pngPhoto} {
		user := fmt.Sprintf("user-%d", i)
		f := fields(user)
		f["photo"] = b64(photo)
		f["user_created_at"] = "2020-01-02T03:04:05Z"
		r := mustSend(t, hs.URL, f)
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %s", r.status, r.raw)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		var got success
		if err := json.Unmarshal(r.raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.ResultCode != "0840" || got.ResultText != "Enroll User" || got.Source != "BackfillUsers" ||
			got.ConfidenceValue != "100" {
			t.Errorf("result fields: %+v", got)
		}
		if got.Actions != enrollActions || got.Actions.RegisterSelfie != "Approved" ||
			got.Actions.LivenessCheck != "Not Applicable" {
			t.Errorf("Actions = %+v", got.Actions)
		}
		acts, _ := r.body["Actions"].(map[string]any)
		if len(acts) != 11 {
			t.Errorf("Actions has %d keys, want 11: %v", len(acts), acts)
		}
		pp := got.PartnerParams
		if pp.JobType != 4 || pp.UserID != user || pp.UserCreatedAt != "2020-01-02T03:04:05Z" || pp.JobID == "" {
			t.Errorf("PartnerParams = %+v", pp)
		}
		if len(got.SmileJobID) < 10 {
			t.Errorf("SmileJobID %q", got.SmileJobID)
		}
		if got.Timestamp != "2024-03-05T10:11:12.345Z" {
			t.Errorf("timestamp %q", got.Timestamp)
		}
		if !signature.Verify(testKey, testPartner, got.Timestamp, got.Signature) {
			t.Errorf("answer signature %q does not verify for %q", got.Signature, got.Timestamp)
		}
	}
	if e := s.Enrolled(); len(e) != 2 || e["user-0"] != 1 || e["user-1"] != 1 {
		t.Errorf("Enrolled = %v", e)
	}
	if st := s.Stats(); st.Requests != 2 || st.Enrolled != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestJobIDsAreUnique(t *testing.T) {
	_, hs := start(t, Options{})
	seen := map[string]bool{}
	for i := range 5 {
		var got success
		r := mustSend(t, hs.URL, fields(fmt.Sprint("u", i)))
		json.Unmarshal(r.raw, &got)
		for _, id := range []string{"job:" + got.PartnerParams.JobID, "smile:" + got.SmileJobID} {
			if seen[id] {
				t.Errorf("repeated id %s", id)
			}
			seen[id] = true
		}
	}
}

func TestRejections(t *testing.T) {
	with := func(k string, v any) map[string]any {
		f := fields("rejected-user")
		f[k] = v
		return f
	}
	without := func(k string) map[string]any {
		f := fields("rejected-user")
		delete(f, k)
		return f
	}
	signedAt := func(partner, ts string) map[string]any {
		f := fields("rejected-user")
		f["partner_id"] = partner
		f["timestamp"] = ts
		f["signature"] = signature.Sign(testKey, partner, ts)
		return f
	}
	ts := signature.Timestamp(time.Now())
	bigPhoto := append(append([]byte{}, jpegPhoto[:4]...), make([]byte, DefaultMaxPhotoBytes+1-4)...)
	cases := []struct {
		name   string
		opts   Options
		body   any
		status int
		code   string
		text   string
	}{
		{"not JSON", Options{}, []byte(`{"partner_id":`), 400, "2203", "Invalid JSON"},
		{"empty body", Options{}, []byte(``), 400, "2203", "Invalid JSON"},
		{"array", Options{}, []byte(`[1,2]`), 400, "2203", "Invalid JSON"},
		{"null", Options{}, []byte(`null`), 400, "2203", "Invalid JSON"},
		{"trailing garbage", Options{}, append(mustJSON(fields("x")), " }"...), 400, "2203", "Invalid JSON"},
		{"user_id number", Options{}, with("user_id", 12345), 400, "2204", "user_id"},
		{"photo object", Options{}, with("photo", map[string]any{"a": 1}), 400, "2204", "photo"},
		{"timestamp bool", Options{}, with("timestamp", true), 400, "2204", "timestamp"},
		{"missing partner_id", Options{}, without("partner_id"), 400, "2413", "Missing parameter: partner_id"},
		{"missing timestamp", Options{}, without("timestamp"), 400, "2413", "Missing parameter: timestamp"},
		{"missing signature", Options{}, without("signature"), 400, "2413", "Missing parameter: signature"},
		{"missing user_id", Options{}, without("user_id"), 400, "2413", "Missing parameter: user_id"},
		{"missing user_created_at", Options{}, without("user_created_at"), 400, "2413", "Missing parameter: user_created_at"},
		{"missing photo", Options{}, without("photo"), 400, "2413", "Missing parameter: photo"},
		{"empty photo", Options{}, with("photo", ""), 400, "2413", "Missing parameter: photo"},
		{"null user_id", Options{}, with("user_id", nil), 400, "2413", "Missing parameter: user_id"},
		{"wrong signature", Options{}, with("signature", signature.Sign("other-key", testPartner, ts)), 401, "2205", "Unauthorized"},
		{"garbage signature", Options{}, with("signature", "not-a-signature"), 401, "2205", "Unauthorized"},
		{"signature for another timestamp", Options{}, with("timestamp", "2020-01-01T00:00:00.000Z"), 401, "2205", "Unauthorized"},
		{"wrong partner", Options{}, signedAt("partner-043", ts), 401, "2205", "Unauthorized"},
		{"timestamp without millis", Options{}, signedAt(testPartner, "2024-03-05T10:11:12Z"), 401, "2205", "Unauthorized"},
		{"timestamp with offset", Options{}, signedAt(testPartner, "2024-03-05T10:11:12.345+01:00"), 401, "2205", "Unauthorized"},
		{"timestamp not a date", Options{}, signedAt(testPartner, "yesterday"), 401, "2205", "Unauthorized"},
		{"refuse 2214", Options{Refuse: "2214"}, fields("r"), 403, "2214", "Product not activated"},
		{"refuse 2220", Options{Refuse: "2220"}, fields("r"), 403, "2220", "Production not enabled"},
		{"refuse 2205", Options{Refuse: "2205"}, fields("r"), 401, "2205", "Unauthorized"},
		{"refuse after bad signature", Options{Refuse: "2214"}, with("signature", "x"), 401, "2205", "Unauthorized"},
		{"data URI", Options{}, with("photo", "data:image/jpeg;base64,"+b64(jpegPhoto)), 400, "2213", "data URI"},
		{"not base64", Options{}, with("photo", "this is not base64!"), 400, "2213", "base64"},
		{"url-safe base64", Options{}, with("photo", strings.NewReplacer("+", "-", "/", "_").Replace(b64(append([]byte{0xFF, 0xD8, 0xFF}, 0xFB, 0xFF, 0xBF)))), 400, "2213", "base64"},
		{"oversized photo", Options{}, with("photo", b64(bigPhoto)), 400, "2213", "5242880"},
		{"over a custom limit", Options{MaxPhotoBytes: 1000}, with("photo", b64(jpegPhoto)), 400, "2213", "1000"},
		{"body too large", Options{}, append([]byte(`{"photo":"`), bytes.Repeat([]byte("A"), 9<<20)...), 413, "2213", "larger"},
		{"GIF", Options{}, with("photo", b64(gifPhoto)), 400, "2213", "JPEG or PNG"},
		{"tiny non-image", Options{}, with("photo", "AAAA"), 400, "2213", "JPEG or PNG"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hs := start(t, c.opts)
			r := mustSend(t, hs.URL, c.body)
			if r.status != c.status || r.body["code"] != c.code {
				t.Fatalf("got HTTP %d %s, want HTTP %d code %s", r.status, r.raw, c.status, c.code)
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, c.text) {
				t.Errorf("error %q does not contain %q", msg, c.text)
			}
			if n := len(s.Enrolled()); n != 0 {
				t.Errorf("%d users enrolled by a refused request", n)
			}
			st := s.Stats()
			if st.Requests != 1 || st.Enrolled != 0 || st.Rejected+st.Unauthorized != 1 {
				t.Errorf("Stats = %+v", st)
			}
			if (c.code == "2205" || c.code == "2214" || c.code == "2220") != (st.Unauthorized == 1) {
				t.Errorf("code %s counted as %+v", c.code, st)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestSecondEnrollmentIs2209(t *testing.T) {
	s, hs := start(t, Options{})
	if r := mustSend(t, hs.URL, fields("alice")); r.status != 200 {
		t.Fatalf("first: %d %s", r.status, r.raw)
	}
	r := mustSend(t, hs.URL, fields("alice"))
	if r.status != 400 || r.body["code"] != "2209" {
		t.Fatalf("second: %d %s", r.status, r.raw)
	}
	if got := s.Enrolled()["alice"]; got != 1 {
		t.Errorf("Enrolled[alice] = %d", got)
	}
	if st := s.Stats(); st.Enrolled != 1 || st.AlreadyEnrolled != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestConcurrentSameUser(t *testing.T) {
	s, hs := start(t, Options{})
	const n = 50
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := send(t, nil, hs.URL, fields("bob"))
			switch {
			case err != nil:
				codes <- "error: " + err.Error()
			case r.status == 200:
				codes <- r.body["ResultCode"].(string)
			default:
				codes <- fmt.Sprint(r.body["code"])
			}
		}()
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count["0840"] != 1 || count["2209"] != n-1 {
		t.Errorf("answers = %v, want one 0840 and %d 2209", count, n-1)
	}
	if got := s.Enrolled()["bob"]; got != 1 {
		t.Errorf("Enrolled[bob] = %d", got)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name       string
		opts       Options
		transport  bool // the client must see a transport error
		status     int
		code       string
		retryAfter string
		enrolled   bool
		stat       func(Stats) int
	}{
		{"fail", Options{FailRate: 1}, false, 500, "2201", "", false, func(s Stats) int { return s.Failed }},
		{"throttle", Options{ThrottleRate: 1}, false, 429, "", "1", false, func(s Stats) int { return s.Throttled }},
		{"throttle 1.5s", Options{ThrottleRate: 1, RetryAfter: 1500 * time.Millisecond}, false, 429, "", "2", false, func(s Stats) int { return s.Throttled }},
		{"drop before", Options{DropBeforeRate: 1}, true, 0, "", "", false, func(s Stats) int { return s.DroppedBefore }},
		{"drop after", Options{DropAfterRate: 1}, true, 0, "", "", true, func(s Stats) int { return s.DroppedAfter }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hs := start(t, c.opts)
			r, err := send(t, nil, hs.URL, fields("carol"))
			if c.transport {
				if err == nil {
					t.Fatalf("no transport error; got HTTP %d %s", r.status, r.raw)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if r.status != c.status || (c.code != "" && r.body["code"] != c.code) {
					t.Fatalf("got HTTP %d %s", r.status, r.raw)
				}
				if got := r.header.Get("Retry-After"); got != c.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
				}
			}
			if got := s.Enrolled()["carol"] == 1; got != c.enrolled {
				t.Errorf("enrolled = %v, want %v", got, c.enrolled)
			}
			if got := c.stat(s.Stats()); got != 1 {
				t.Errorf("counter = %d, want 1 (%+v)", got, s.Stats())
			}
		})
	}
}

func TestFaultsStillCheckAuthFirst(t *testing.T) {
	s, hs := start(t, Options{FailRate: 1})
	f := fields("dave")
	f["signature"] = signature.Sign("wrong", testPartner, f["timestamp"].(string))
	if r := mustSend(t, hs.URL, f); r.status != 401 {
		t.Errorf("got HTTP %d %s, want 401", r.status, r.raw)
	}
	if st := s.Stats(); st.Failed != 0 || st.Unauthorized != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestDropAfterThenRetryGets2209(t *testing.T) {
	// Half the requests drop after enrolling: every user ends enrolled once,
	// and a retry after a drop is answered 2209.
	s, hs := start(t, Options{DropAfterRate: 0.5, Seed: 7})
	drops := 0
	for i := range 20 {
		user := fmt.Sprint("u", i)
		if _, err := send(t, nil, hs.URL, fields(user)); err != nil {
			drops++
			r := mustSend(t, hs.URL, fields(user))
			if r.body["code"] != "2209" {
				t.Errorf("retry after drop: %s", r.raw)
			}
		}
	}
	if drops == 0 || drops == 20 {
		t.Errorf("%d of 20 dropped with rate 0.5", drops)
	}
	for user, n := range s.Enrolled() {
		if n != 1 {
			t.Errorf("Enrolled[%s] = %d", user, n)
		}
	}
	if st := s.Stats(); st.Enrolled != 20 || st.DroppedAfter != drops || st.AlreadyEnrolled != drops {
		t.Errorf("Stats = %+v with %d drops", st, drops)
	}
}

func TestDiceAreSeeded(t *testing.T) {
	run := func(seed int64) string {
		s, err := New(Options{PartnerID: "p", APIKey: "k", FailRate: 0.3, ThrottleRate: 0.3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 40 {
			fmt.Fprint(&b, s.roll())
		}
		return b.String()
	}
	if run(0) != run(0) || run(3) != run(3) {
		t.Error("same seed, different draws")
	}
	if run(3) == run(4) {
		t.Error("different seeds, same 40 draws")
	}
	if d := run(0); !strings.Contains(d, fmt.Sprint(outFailed)) || !strings.Contains(d, fmt.Sprint(outEnrolled)) {
		t.Errorf("draws %s lack a fault or a pass", d)
	}
}

func TestLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	_, hs := start(t, Options{Latency: latency})
	for _, body := range []any{fields("erin"), []byte("{")} {
		t0 := time.Now()
		mustSend(t, hs.URL, body)
		if d := time.Since(t0); d < latency {
			t.Errorf("answered after %v, want at least %v", d, latency)
		}
	}
}

func TestLatencyClientGivesUp(t *testing.T) {
	// The enrollment stands even though the client stopped waiting.
	s, hs := start(t, Options{Latency: 2 * time.Second})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := send(t, client, hs.URL, fields("frank")); err == nil {
		t.Fatal("no time-out")
	}
	if got := s.Enrolled()["frank"]; got != 1 {
		t.Errorf("Enrolled[frank] = %d", got)
	}
}

func TestMaxPerSecond(t *testing.T) {
	var clock atomic.Int64
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s, hs := start(t, Options{Now: func() time.Time { return base.Add(time.Duration(clock.Load())) }})
	// Arrivals in ms. The window (t-1s, t] is fullest at t = 1180, holding
	// 200, 1150, 1160, 1170 and 1180: five requests. A fixed one-second
	// bucket would count at most four.
	for _, ms := range []int{0, 100, 200, 1150, 1160, 1170, 1180, 3000} {
		clock.Store(int64(ms) * int64(time.Millisecond))
		mustSend(t, hs.URL, []byte("{"))
	}
	// Over five seconds, (t-5s, t] at t = 3000 holds all eight.
	if st := s.Stats(); st.MaxPerSecond != 5 || st.MaxPer5Seconds != 8 || st.Requests != 8 {
		t.Errorf("Stats = %+v, want MaxPerSecond 5, MaxPer5Seconds 8", st)
	}
	if n := len(s.arrivals.times) - s.arrivals.head; n > 1 {
		t.Errorf("window keeps %d live entries after a quiet second", n)
	}
}

func TestMaxPerSecondRealClock(t *testing.T) {
	s, hs := start(t, Options{})
	for range 10 {
		mustSend(t, hs.URL, []byte("{"))
	}
	if st := s.Stats(); st.MaxPerSecond < 2 || st.MaxPerSecond > 10 {
		t.Errorf("MaxPerSecond = %d", st.MaxPerSecond)
	}
}

func TestRoutes(t *testing.T) {
	_, hs := start(t, Options{})
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", BackfillPath, 405},
		{"PUT", BackfillPath, 405},
		{"POST", "/v1/other", 404},
		{"GET", "/", 404},
		{"POST", StatePath, 405},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, hs.URL+c.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.status || err != nil || body["error"] == nil {
			t.Errorf("%s %s: HTTP %d, %v, %v", c.method, c.path, resp.StatusCode, body, err)
		}
	}
}

func getState(t *testing.T, base string) State {
	t.Helper()
	resp, err := http.Get(base + StatePath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("state: HTTP %d", resp.StatusCode)
	}
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStateRoute(t *testing.T) {
	s, hs := start(t, Options{})
	mustSend(t, hs.URL, fields("gina"))
	mustSend(t, hs.URL, fields("gina"))
	mustSend(t, hs.URL, []byte("nope"))
	st := getState(t, hs.URL)
	if st.Stats != s.Stats() || st.Stats.Enrolled != 1 || st.Stats.AlreadyEnrolled != 1 ||
		st.Stats.Rejected != 1 || st.Stats.Requests != 3 {
		t.Errorf("state stats = %+v, server = %+v", st.Stats, s.Stats())
	}
	if len(st.Enrolled) != 1 || st.Enrolled["gina"] != 1 {
		t.Errorf("state enrolled = %v", st.Enrolled)
	}
	// The documented key names.
	resp, err := http.Get(hs.URL + StatePath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, k := range []string{`"stats":{`, `"enrolled":{"gina":1}`, `"max_per_second":`, `"already_enrolled":1`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Errorf("state %s lacks %s", raw, k)
		}
	}
}

// sdkSign computes a signature the way Smile ID's SDKs do, independently of
// package signature.
func sdkSign(key, partner, ts string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts))
	mac.Write([]byte(partner))
	mac.Write([]byte("sid_request"))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSDKCompatibility(t *testing.T) {
	if got := sdkSign("apiKey", "partner", "2023-02-13T15:07:42.214Z"); got != "XxThLHZy2ij1WINkqNEPgzVs9RvUDHWlebDYzprqS74=" {
		t.Fatalf("independent signer is wrong: %s", got)
	}
	s, hs := start(t, Options{})
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	body := fmt.Sprintf(`{"partner_id":%q,"timestamp":%q,"signature":%q,"user_id":"sdk-user","user_created_at":"2022-02-02","photo":%q}`,
		testPartner, ts, sdkSign(testKey, testPartner, ts), b64(pngPhoto))
	r := mustSend(t, hs.URL, []byte(body))
	if r.status != 200 {
		t.Fatalf("HTTP %d %s", r.status, r.raw)
	}
	ats, _ := r.body["timestamp"].(string)
	if sig, _ := r.body["signature"].(string); sig == "" || sig != sdkSign(testKey, testPartner, ats) {
		t.Errorf("answer signature %q, independent computation %q", sig, sdkSign(testKey, testPartner, ats))
	}
	if s.Enrolled()["sdk-user"] != 1 {
		t.Error("not enrolled")
	}
}

func TestNewValidates(t *testing.T) {
	ok := Options{PartnerID: "p", APIKey: "k"}
	cases := []struct {
		name string
		edit func(*Options)
		bad  bool
	}{
		{"valid", func(*Options) {}, false},
		{"all rates summing to 1", func(o *Options) {
			o.FailRate, o.ThrottleRate, o.DropBeforeRate, o.DropAfterRate = 0.1, 0.2, 0.3, 0.4
		}, false},
		{"no partner", func(o *Options) { o.PartnerID = "" }, true},
		{"no key", func(o *Options) { o.APIKey = "" }, true},
		{"negative rate", func(o *Options) { o.FailRate = -0.1 }, true},
		{"rate above 1", func(o *Options) { o.ThrottleRate = 1.5 }, true},
		{"NaN rate", func(o *Options) { o.DropAfterRate = nan() }, true},
		{"rates above 1 together", func(o *Options) { o.FailRate, o.DropBeforeRate = 0.6, 0.6 }, true},
		{"unknown refusal", func(o *Options) { o.Refuse = "2201" }, true},
		{"negative photo limit", func(o *Options) { o.MaxPhotoBytes = -1 }, true},
	}
	for _, c := range cases {
		o := ok
		c.edit(&o)
		_, err := New(o)
		if (err != nil) != c.bad {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if err != nil && strings.Contains(err.Error(), o.APIKey) && o.APIKey != "" {
			t.Errorf("%s: error mentions the key: %v", c.name, err)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, "127.0.0.1:0", Options{PartnerID: testPartner, APIKey: testKey}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the banner: %v", err)
	}
	go io.Copy(io.Discard, pr)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "sandbox listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("banner %q", line)
	}
	if r := mustSend(t, base, fields("run-user")); r.status != 200 {
		t.Fatalf("HTTP %d %s", r.status, r.raw)
	}
	if st := getState(t, base); st.Enrolled["run-user"] != 1 {
		t.Errorf("state = %+v", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(7 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(base + StatePath); err == nil {
		t.Error("still serving after Run returned")
	}
}

func TestRunErrors(t *testing.T) {
	ctx := context.Background()
	if err := Run(ctx, "127.0.0.1:0", Options{PartnerID: "p"}, io.Discard); err == nil {
		t.Error("Run without a key succeeded")
	}
	if err := Run(ctx, "256.0.0.1:bad", Options{PartnerID: "p", APIKey: "k"}, io.Discard); err == nil {
		t.Error("Run on a bad address succeeded")
	}
}

func TestBaseURL(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:9":         "http://[::1]:9",
		"[::1]:9":        "http://[::1]:9",
	}
	for in, want := range cases {
		if got := baseURL(fakeAddr(in)); got != want {
			t.Errorf("baseURL(%s) = %s, want %s", in, got, want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestHandlerWithoutHijackerAborts(t *testing.T) {
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey, DropBeforeRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", BackfillPath, bytes.NewReader(mustJSON(fields("hal"))))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	s.ServeHTTP(httptest.NewRecorder(), req)
}

func BenchmarkBackfill(b *testing.B) {
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = mustJSON(fields(fmt.Sprint("bench-", i)))
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest("POST", BackfillPath, bytes.NewReader(bodies[i%len(bodies)]))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 200 && w.Code != 400 {
			b.Fatalf("HTTP %d", w.Code)
		}
	}
}

func BenchmarkBackfillHTTP(b *testing.B) {
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	body := mustJSON(fields("bench-http"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetBytes(int64(len(body)))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(hs.URL+BackfillPath, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	if st := s.Stats(); st.Enrolled != 1 {
		b.Errorf("Stats = %+v", st)
	}
}
