package importer

import (
	"bulkenroll/importer/smileid"
	"errors"
	"strings"
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
			d := backoff(c.try, base, ceiling, c.retryAfter)
			if d < c.lo || d > c.hi {
				t.Fatalf("backoff(%d, retry-after %v) = %v, want %v..%v", c.try, c.retryAfter, d, c.lo, c.hi)
			}
			seen[d] = true
		}
		if c.lo != c.hi && len(seen) < 10 {
			t.Errorf("backoff(%d) took only %d values in 200 draws: no jitter?", c.try, len(seen))
		}
	}
	// A base so large that shifting overflows still gives the ceiling.
	if d := backoff(10, time.Duration(1)<<62, time.Minute, 0); d < 30*time.Second || d > time.Minute {
		t.Errorf("overflowing backoff = %v", d)
	}
}

// TestAccountErrorAdvice checks that a stopped run's account error carries
// the advice for its code and unwraps to the API's answer.
func TestAccountErrorAdvice(t *testing.T) {
	for _, code := range []string{"2205", "2214", "2220", ""} {
		ae := &AccountError{API: &smileid.APIError{Status: 403, Code: code}}
		if !strings.Contains(ae.Error(), smileid.AccountAdvice(code)) || !errors.Is(ae, error(ae.API)) {
			t.Errorf("AccountError %q lacks its advice or does not unwrap", ae.Error())
		}
	}
}
