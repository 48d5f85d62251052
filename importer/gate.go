package importer

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// gate admits requests for the whole pool. It enforces the request rate and,
// after the API answers 429, pauses every worker for the Retry-After the
// server named, so one throttled answer slows the pool down instead of each
// worker hammering on by itself.
//
// It has three modes:
//
//   - no limit (--rate 0): only the pauses after a 429;
//   - fixed (--rate R): R per second; a 429 halves the rate (down to R/8)
//     for slowFor, then R again;
//   - auto (--rate auto): the limit is discovered while the run goes, with
//     additive increase and multiplicative decrease (AIMD), as TCP congestion
//     control and the AWS SDKs' adaptive retry mode do. See gateConfig.
//
// The auto control law, in one paragraph: the limit starts at Start (or just
// below a remembered learned rate) and grows by alphaFast = Max/5 per second
// of successful sending (10/s to 50/s in four seconds with the default
// Max). A 429 sets the learned rate to the rate of successful answers over
// the second before it (capped by the limit) and cuts the limit to
// beta × learned (beta = 0.7), and the pool pauses for Retry-After. The limit
// then climbs back fast to 0.95 × learned, and from there probes slowly,
// at 0.5% of learned per second, so that a quota once found costs a 429 (and
// a Retry-After pause) only every 15 to 20 seconds. Past 1.05 × learned with
// no 429 the learned rate is stale (the quota grew) and the fast climb
// resumes. The limit never leaves [minRate, Max]. While the pool sends well
// below the limit (the workers, not the gate, are the bottleneck: the run is
// application-limited, RFC 7661), the limit does not grow.
type gate struct {
	now  func() time.Time
	mode gateMode

	mu      sync.Mutex
	limit   float64 // requests per second; 0 in gateOpen mode
	base    float64 // fixed mode: the configured rate
	max     float64 // auto mode: the ceiling
	learned float64 // the quota found at the last 429; 0: none yet
	workers int

	tokens   float64   // token bucket; negative: requests reserved ahead
	filled   time.Time // when tokens was last brought up to date
	burst    float64
	grown    time.Time // auto: when the limit was last grown
	created  time.Time
	holdTill time.Time // 429s before this belong to the episode already cut for

	pauseUntil time.Time
	slowUntil  time.Time // fixed mode: when the rate goes back to base

	hist history
}

type gateMode int

const (
	gateOpen gateMode = iota
	gateFixed
	gateAuto
)

// gateConfig configures a gate.
type gateConfig struct {
	// Fixed, if positive, is a fixed limit in requests per second.
	Fixed float64
	// Auto selects the adaptive rate (ignored when Fixed is positive).
	// With neither, the gate only pauses after a 429.
	Auto bool
	// Start is the adaptive rate's first limit; default defaultStartRate.
	Start float64
	// Max is the adaptive rate's ceiling; default defaultMaxRate.
	Max float64
	// Learned seeds the adaptive rate with the quota a previous run learned
	// for this endpoint (0: none): the run starts just below it and
	// approaches it with care instead of from Start.
	Learned float64
	// Workers is the size of the pool; it caps the burst.
	Workers int
	// Now replaces the clock (tests, simulations); default time.Now.
	Now func() time.Time
}

// Constants of the adaptive rate.
const (
	defaultStartRate = 10.0 // requests/s, a rate no API should mind
	defaultMaxRate   = 50.0 // requests/s, --max-rate's default
	minRate          = 0.5  // requests/s: the limit never goes below
	gateBeta         = 0.7  // multiplicative decrease on a 429 (TCP CUBIC, AWS adaptive retry)
	alphaFastShare   = 0.2  // additive increase per second, as a share of Max
	probeShare       = 0.005
	approachShare    = 0.95 // the fast climb stops here, as a share of learned
	staleShare       = 1.05 // past this share of learned with no 429, learned is stale
	boundShare       = 0.8  // sending below this share of the limit: worker-bound
	boundWindow      = 2 * time.Second
	measureWindow    = time.Second
	maxGrowStep      = time.Second // the most time one success may count for
)

// slowFor is how long a fixed-rate pool runs at a reduced rate after a 429.
const slowFor = 30 * time.Second

// newGate returns a gate with a fixed limit of perSecond requests per
// second, or no limit if perSecond is 0. workers caps the burst.
func newGate(perSecond float64, workers int) *gate {
	return newGateWith(gateConfig{Fixed: perSecond, Workers: workers})
}

// newGateWith returns a gate configured by c.
func newGateWith(c gateConfig) *gate {
	g := &gate{now: c.Now, workers: c.Workers}
	if g.now == nil {
		g.now = time.Now
	}
	now := g.now()
	g.created, g.filled, g.grown = now, now, now
	switch {
	case c.Fixed > 0:
		g.mode = gateFixed
		g.base = c.Fixed
		g.setLimit(c.Fixed)
	case c.Auto:
		g.mode = gateAuto
		g.max = c.Max
		if !(g.max > 0) {
			g.max = defaultMaxRate
		}
		g.max = max(g.max, minRate)
		start := c.Start
		if !(start > 0) {
			start = defaultStartRate
		}
		if c.Learned > 0 && !math.IsInf(c.Learned, 0) {
			g.learned = c.Learned
			start = approachShare * c.Learned
		}
		g.setLimit(min(max(start, minRate), g.max))
	}
	g.tokens = g.burst
	return g
}

// setLimit changes the limit and the burst that goes with it: a tenth of a
// second's worth, at least 1, at most the pool. The caller holds g.mu (or
// owns g) and has brought the bucket up to date.
func (g *gate) setLimit(l float64) {
	g.limit = l
	g.burst = float64(min(max(1, int(l/10)), max(1, g.workers)))
	g.tokens = min(g.tokens, g.burst)
}

// wait blocks until a request may go, or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, paused := g.reserve(g.now())
		if paused {
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		if d > 0 {
			if err := sleep(ctx, d); err != nil {
				g.unreserve()
				return err
			}
		}
		// A pause that began while this request waited for its token
		// holds it too.
		for {
			p := g.pausedFor(g.now())
			if p <= 0 {
				break
			}
			if err := sleep(ctx, p); err != nil {
				return err
			}
		}
		g.sent(g.now())
		return nil
	}
}

// reserve is one step of wait at time now. During a pause it returns the
// pause left and paused set, and takes nothing. Otherwise it takes a token
// and returns how long the request must wait for it (0: go now).
func (g *gate) reserve(now time.Time) (delay time.Duration, paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.pauseUntil.Sub(now); d > 0 {
		return d, true
	}
	if g.mode == gateFixed && !g.slowUntil.IsZero() && !now.Before(g.slowUntil) {
		g.refill(now)
		g.setLimit(g.base)
		g.slowUntil = time.Time{}
	}
	if g.mode == gateOpen {
		return 0, false
	}
	g.refill(now)
	g.tokens--
	if g.tokens >= 0 {
		return 0, false
	}
	return time.Duration(-g.tokens / g.limit * float64(time.Second)), false
}

// unreserve gives back the token of a request that gave up waiting.
func (g *gate) unreserve() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode != gateOpen {
		g.tokens = min(g.tokens+1, g.burst)
	}
}

// pausedFor returns how much of a pause is left at now.
func (g *gate) pausedFor(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauseUntil.Sub(now)
}

// refill brings the token bucket up to now. The caller holds g.mu.
func (g *gate) refill(now time.Time) {
	if dt := now.Sub(g.filled).Seconds(); dt > 0 {
		g.tokens = min(g.burst, g.tokens+dt*g.limit)
		g.filled = now
	}
}

// sent records a request going out at now.
func (g *gate) sent(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.account(now)
	g.hist.bin(now).sent++
}

// succeeded records a verified answer that was not a 429, and grows the
// adaptive limit by the time since the last growth, unless the pool is
// paused or worker-bound.
func (g *gate) succeeded() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.account(now)
	g.hist.bin(now).ok++
	if g.mode != gateAuto {
		return
	}
	if now.Before(g.pauseUntil) {
		return
	}
	dt := min(now.Sub(g.grown), maxGrowStep).Seconds()
	g.grown = now
	if dt <= 0 || g.boundLocked(now) {
		return
	}
	g.refill(now)
	g.setLimit(g.grow(g.limit, dt))
}

// grow returns the limit l after dt seconds of additive increase.
func (g *gate) grow(l, dt float64) float64 {
	fast := alphaFastShare * g.max
	if g.learned > 0 {
		approach := approachShare * g.learned
		stale := staleShare * g.learned
		switch {
		case l < approach:
			// Fast back up to just below the learned rate, but no further
			// in one step.
			l = min(l+fast*dt, approach)
		case l < stale:
			l += probeShare * g.learned * dt
		default:
			l += fast * dt
		}
	} else {
		l += fast * dt
	}
	return min(max(l, minRate), g.max)
}

// throttled records a 429 and pauses the whole pool for retryAfter (1s if the
// server named none). In auto mode the first 429 of an episode sets the
// learned rate and cuts the limit to gateBeta times it; in fixed mode it
// halves the rate (down to an eighth) for slowFor.
func (g *gate) throttled(retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.account(now)
	g.hist.bin(now).throttled++
	if until := now.Add(retryAfter); until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
	if g.mode == gateAuto && now.Before(g.holdTill) {
		// Requests sent before the cut are still coming back: one cut
		// per episode, as TCP cuts once per window.
		return
	}
	g.learned = g.measured(now)
	g.refill(now)
	switch g.mode {
	case gateFixed:
		g.setLimit(max(g.limit/2, g.base/8))
		g.slowUntil = now.Add(slowFor)
	case gateAuto:
		g.holdTill = g.pauseUntil.Add(time.Second / 2)
		g.setLimit(min(max(gateBeta*g.learned, minRate), g.max))
		g.grown = g.pauseUntil
	}
}

// measured returns the rate of successful answers over the last
// measureWindow, capped by the limit; the limit if there were too few to
// tell. The caller holds g.mu.
func (g *gate) measured(now time.Time) float64 {
	ok, _, _, _, span := g.hist.sum(now, g.created, measureWindow)
	if ok < 3 || span < binWidth {
		if g.limit > 0 {
			return g.limit
		}
		return float64(ok) / max(span.Seconds(), 0.1)
	}
	r := float64(ok) / span.Seconds()
	if g.limit > 0 {
		r = min(r, g.limit)
	}
	return r
}

// rates returns the limit in force (0: none) and the learned quota (0: none
// found yet), in requests per second.
func (g *gate) rates() (current, learned float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit, g.learned
}

// workerBound reports whether, over the last few seconds, requests went out
// well below the limit with no 429: the pool, not the gate, limits the
// speed, and more workers would go faster. Always false without a limit.
func (g *gate) workerBound() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.account(now)
	return g.boundLocked(now)
}

// boundLocked is workerBound with g.mu held and the history up to date.
func (g *gate) boundLocked(now time.Time) bool {
	if g.mode == gateOpen || now.Sub(g.created) < boundWindow/2 {
		return false
	}
	_, sent, throttled, allowed, _ := g.hist.sum(now, g.created, boundWindow)
	if throttled > 0 || allowed < 2 {
		return false
	}
	return float64(sent) < boundShare*allowed
}

// account adds what the limit allowed since the last call to the history,
// leaving out pauses. The caller holds g.mu.
func (g *gate) account(now time.Time) {
	from := g.hist.upTo
	if from.IsZero() {
		from = g.created
	}
	if !now.After(from) {
		return
	}
	g.hist.upTo = now
	if from.Before(g.pauseUntil) {
		from = earlier(g.pauseUntil, now)
	}
	if g.mode == gateOpen || !now.After(from) {
		return
	}
	if now.Sub(from) > histSpan {
		from = now.Add(-histSpan)
	}
	for t := from; t.Before(now); {
		b := g.hist.bin(t)
		end := earlier(b.start.Add(binWidth), now)
		b.allowed += end.Sub(t).Seconds() * g.limit
		t = end
	}
}

// history counts, in binWidth bins over the last histSpan, the requests
// sent, the answers, and what the limit allowed.
type history struct {
	bins [histBins]histBin
	upTo time.Time // allowed is accounted up to here
}

type histBin struct {
	start     time.Time
	sent, ok  int
	throttled int
	allowed   float64
}

const (
	binWidth = 100 * time.Millisecond
	histBins = 50
	histSpan = histBins * binWidth
)

// bin returns the bin of time t, clearing it if it held an older period.
func (h *history) bin(t time.Time) *histBin {
	n := t.UnixNano() / int64(binWidth)
	b := &h.bins[n%histBins]
	start := time.Unix(0, n*int64(binWidth))
	if !b.start.Equal(start) {
		*b = histBin{start: start}
	}
	return b
}

// sum adds up the bins from the one holding now-span to now, and returns
// the time they cover (from the start of the first, or since, to now).
func (h *history) sum(now, since time.Time, span time.Duration) (ok, sent, throttled int, allowed float64, covered time.Duration) {
	if span <= 0 {
		return
	}
	from := now.Add(-span).Truncate(binWidth)
	for i := range h.bins {
		b := &h.bins[i]
		if b.start.IsZero() || b.start.Before(from) || b.start.After(now) {
			continue
		}
		ok += b.ok
		sent += b.sent
		throttled += b.throttled
		allowed += b.allowed
	}
	return ok, sent, throttled, allowed, now.Sub(later(from, since))
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
