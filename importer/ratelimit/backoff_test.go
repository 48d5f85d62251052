package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const base, ceiling = 100 * time.Millisecond, time.Second
	cases := []struct {
		try        int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{0, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 0, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 0, 500 * time.Millisecond, time.Second},
		{30, 0, 500 * time.Millisecond, time.Second},
		{1000, 0, 500 * time.Millisecond, time.Second},
		{0, 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{4, 700 * time.Millisecond, 700 * time.Millisecond, time.Second},
	}
	for _, c := range cases {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Backoff(c.try, base, ceiling, c.retryAfter)
			if d < c.lo || d > c.hi {
				t.Fatalf("Backoff(%d, retry-after %v) = %v, want %v..%v", c.try, c.retryAfter, d, c.lo, c.hi)
			}
			seen[d] = true
		}
		if c.lo != c.hi && len(seen) < 10 {
			t.Errorf("Backoff(%d) took only %d values in 200 draws: no jitter?", c.try, len(seen))
		}
	}
	// A base so large that shifting overflows still gives the ceiling.
	if d := Backoff(10, time.Duration(1)<<62, time.Minute, 0); d < 30*time.Second || d > time.Minute {
		t.Errorf("overflowing backoff = %v", d)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 12 ", 12 * time.Second},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"3600", time.Hour},
		{"99999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.ANSIC), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
		{now.Add(5 * time.Hour).Format(http.TimeFormat), time.Hour},
	}
	for _, c := range cases {
		if got := RetryAfter(c.in, now); got != c.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
