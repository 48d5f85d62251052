package ratelimit

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The retry backoff's defaults, for every pipeline that retries.
const (
	// DefaultBackoffBase is the wait before the first retry.
	DefaultBackoffBase = 500 * time.Millisecond
	// DefaultBackoffMax caps the wait before any retry.
	DefaultBackoffMax = 30 * time.Second
)

// Backoff returns the wait before retry number try (0 for the first retry):
// exponential from base, capped at ceiling, with full jitter over its upper
// half, but never shorter than retryAfter (the server's Retry-After, 0 if
// none; the caller caps it to its own policy).
func Backoff(try int, base, ceiling, retryAfter time.Duration) time.Duration {
	d := base << min(max(try, 0), 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// Sleep waits d or until ctx ends, and returns ctx's error if it ended.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MaxRetryAfter caps what RetryAfter returns: a server asking for more is
// read as asking for this.
const MaxRetryAfter = time.Hour

// RetryAfter parses the value of a Retry-After header (RFC 9110 §10.2.3):
// whole seconds, or an HTTP date counted from now. It returns 0 for an
// empty, malformed, negative or past value, and at most MaxRetryAfter.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, int(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
