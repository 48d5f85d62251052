package sandbox

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuota(t *testing.T) {
	var clock atomic.Int64
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) { clock.Store(int64(ms) * int64(time.Millisecond)) }
	s, hs := start(t, Options{Quota: 10, QuotaBurst: 2, Now: func() time.Time { return base.Add(time.Duration(clock.Load())) }})

	// The bucket starts full: two go, the third is refused.
	for i := range 2 {
		if r := mustSend(t, hs.URL, fields("q"+string(rune('a'+i)))); r.status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, r.status, r.raw)
		}
	}
	r := mustSend(t, hs.URL, fields("q-refused"))
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("over the quota: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if r.body["error"] != "Too Many Requests" || r.body["code"] != nil {
		t.Errorf("429 body %s", r.raw)
	}
	// A request the quota refused was not enrolled: it goes through later.
	at(100)
	if r := mustSend(t, hs.URL, fields("q-refused")); r.status != 200 {
		t.Errorf("after a token came: %d %s", r.status, r.raw)
	}
	// Unauthorised requests are refused before the quota and use no token.
	at(200)
	bad := fields("q-bad")
	bad["signature"] = "AAAA"
	for range 3 {
		if r := mustSend(t, hs.URL, bad); r.status != 401 {
			t.Fatalf("bad signature: %d", r.status)
		}
	}
	if r := mustSend(t, hs.URL, fields("q-c")); r.status != 200 {
		t.Errorf("a token was used by an unauthorised request: %d", r.status)
	}
	st := s.Stats()
	if st.QuotaRefused != 1 || st.Throttled != 0 || st.Enrolled != 4 || st.Unauthorized != 3 || st.Requests != 8 {
		t.Errorf("Stats = %+v", st)
	}
	if st.MaxAcceptedPerSecond != 4 || st.MaxPerSecond != 8 {
		t.Errorf("MaxAcceptedPerSecond %d, MaxPerSecond %d; want 4 and 8", st.MaxAcceptedPerSecond, st.MaxPerSecond)
	}
	if got := getState(t, hs.URL); got.Stats.QuotaRefused != 1 || got.Stats.MaxAcceptedPerSecond != 4 {
		t.Errorf("state %+v", got.Stats)
	}
}

func TestQuotaRetryAfterRoundsUp(t *testing.T) {
	var clock atomic.Int64
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	_, hs := start(t, Options{Quota: 0.2, Now: func() time.Time { return base.Add(time.Duration(clock.Load())) }})
	if r := mustSend(t, hs.URL, fields("r1")); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	clock.Store(int64(1500 * time.Millisecond)) // 3.5s until the next token
	if r := mustSend(t, hs.URL, fields("r2")); r.status != 429 || r.header.Get("Retry-After") != "4" {
		t.Errorf("Retry-After %q (status %d), want 4", r.header.Get("Retry-After"), r.status)
	}
}

func TestQuotaRealClock(t *testing.T) {
	// 60 requests from 8 clients as fast as they go, against 20/s with a
	// burst of 2: at most 22 pass in any second, the rest get 429.
	s, hs := start(t, Options{Quota: 20})
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				r, err := send(t, nil, hs.URL, fields("rc-"+strings.Repeat("x", w+1)+string(rune('a'+i))))
				if err != nil {
					t.Error(err)
					return
				}
				if r.status != 200 && r.status != 429 {
					t.Errorf("status %d %s", r.status, r.raw)
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.MaxAcceptedPerSecond > 22 || st.Enrolled+st.QuotaRefused != int(n.Load()) || st.QuotaRefused == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestQuotaOptionsValidated(t *testing.T) {
	for _, o := range []Options{{Quota: -1}, {Quota: nan()}, {Quota: 1, QuotaBurst: -1}} {
		o.PartnerID, o.APIKey = testPartner, testKey
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
