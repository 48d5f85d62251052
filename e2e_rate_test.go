//go:build unix

package main

// What the rate tests assert (issue 17, item 8): what the limiter let go,
// not how fast a loaded machine delivered it. Requests go through a
// recording proxy in the test process that notes when each arrives and for
// which user.
//
// A limiter of r per second with a burst b lets at most r × T + b requests
// go in any span T. A request arrives at or after it was let go, never
// before, so the arrivals of n requests span at least (n − b) / r minus the
// delay of the first one. The check allows that delay e2eRateSlack (a
// machine that holds a loopback request for two seconds fails other
// tests first), and so only fails for a limiter that lets through more
// than its rate on average over the whole run: a broken limiter (a limit
// per worker, no limit) is far over it.

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"bulkenroll/importer/testkit"
)

// e2eRateSlack is how late a loaded machine may deliver the first request
// of a rate-limited run.
const e2eRateSlack = 2 * time.Second

// e2eArrivals is a reverse proxy to a sandbox that records the arrival
// time of every request by user.
type e2eArrivals struct {
	URL string

	mu sync.Mutex
	at map[string][]time.Time
}

// e2eRecordArrivals starts a recording proxy to target.
func e2eRecordArrivals(t testing.TB, target string) *e2eArrivals {
	t.Helper()
	a := &e2eArrivals{at: map[string][]time.Time{}}
	rp := testkit.NewProxy(t, target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		id := testkit.UserIDOf(body)
		a.at[id] = append(a.at[id], now)
		a.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// of returns the arrival times of the requests for users (all users if
// users is nil), sorted.
func (a *e2eArrivals) of(users map[string]bool) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []time.Time
	for id, ts := range a.at {
		if users == nil || users[id] {
			out = append(out, ts...)
		}
	}
	slices.SortFunc(out, func(x, y time.Time) int { return x.Compare(y) })
	return out
}

// e2eRateCheck returns an error if the arrivals at (sorted) could not have
// been let go by a limiter of rate per second with the given burst: n
// requests need (n − burst) / rate seconds, less e2eRateSlack for a late
// first arrival. It also returns the average arrival rate, for the log.
func e2eRateCheck(at []time.Time, rate float64, burst int) (float64, error) {
	if len(at) < 2 {
		return 0, fmt.Errorf("%d requests recorded", len(at))
	}
	span := at[len(at)-1].Sub(at[0])
	avg := float64(len(at)-1) / span.Seconds()
	need := time.Duration(float64(len(at)-burst) / rate * float64(time.Second))
	if span < need-e2eRateSlack {
		return avg, fmt.Errorf("%d requests arrived within %s (%.1f/s): a limiter of %g/s with a burst of %d needs %s (less %s for a late first arrival)",
			len(at), span.Round(time.Millisecond), avg, rate, burst, need.Round(time.Millisecond), e2eRateSlack)
	}
	return avg, nil
}

func TestE2ERateCheck(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	spread := func(n int, every time.Duration) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = t0.Add(time.Duration(i) * every)
		}
		return out
	}
	// 160 requests at 20/s span 7.95 s.
	if _, err := e2eRateCheck(spread(160, 50*time.Millisecond), 20, 2); err != nil {
		t.Errorf("a run at the rate: %v", err)
	}
	// The same with the first request 1.5 s late.
	late := spread(160, 50*time.Millisecond)
	late[0] = late[0].Add(1500 * time.Millisecond)
	slices.SortFunc(late, func(x, y time.Time) int { return x.Compare(y) })
	if _, err := e2eRateCheck(late, 20, 2); err != nil {
		t.Errorf("a late first arrival: %v", err)
	}
	// Twice the rate, or no limit: refused.
	for _, every := range []time.Duration{25 * time.Millisecond, time.Millisecond} {
		if _, err := e2eRateCheck(spread(160, every), 20, 2); err == nil {
			t.Errorf("requests every %v passed a limit of 20/s", every)
		}
	}
	if _, err := e2eRateCheck(nil, 20, 2); err == nil {
		t.Error("no requests passed")
	}
}
