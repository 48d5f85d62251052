package importer

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// gate admits requests for the whole pool: the --rate limit, and a pause for
// every worker after the API says 429, so one throttled answer slows the pool
// down instead of each worker hammering on by itself.
type gate struct {
	limiter *rate.Limiter // nil: no limit
	base    rate.Limit

	mu         sync.Mutex
	pauseUntil time.Time
	slowUntil  time.Time
}

// slowFor is how long the pool runs at a reduced rate after a 429.
const slowFor = 30 * time.Second

func newGate(perSecond float64, workers int) *gate {
	g := &gate{}
	if perSecond > 0 {
		// A small burst: a tenth of a second's worth, at least 1, at most the pool.
		burst := min(max(1, int(perSecond/10)), max(1, workers))
		g.base = rate.Limit(perSecond)
		g.limiter = rate.NewLimiter(g.base, burst)
	}
	return g
}

// wait blocks until a request may go, or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		now := time.Now()
		d := g.pauseUntil.Sub(now)
		if g.limiter != nil && !g.slowUntil.IsZero() && now.After(g.slowUntil) {
			g.limiter.SetLimit(g.base)
			g.slowUntil = time.Time{}
		}
		g.mu.Unlock()
		if d <= 0 {
			break
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	if g.limiter == nil {
		return ctx.Err()
	}
	return g.limiter.Wait(ctx)
}

// throttled pauses the whole pool for retryAfter (1s if the server named
// none) and halves the rate for a while.
func (g *gate) throttled(retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if until := time.Now().Add(retryAfter); until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
	if g.limiter != nil {
		g.limiter.SetLimit(max(g.limiter.Limit()/2, g.base/8))
		g.slowUntil = time.Now().Add(slowFor)
	}
}

// backoff returns the wait before retry number try (0 for the first retry):
// exponential from base, capped at max, with full jitter, but never shorter
// than the server's Retry-After.
func backoff(try int, base, ceiling, retryAfter time.Duration) time.Duration {
	d := base << min(try, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
