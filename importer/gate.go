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
//   - fixed (--rate R): R per second; a 429 halves the rate (down to R/8),
//     which then climbs back to R additively within seconds (at the latest
//     after slowFor);
//   - auto (--rate auto): the limit is discovered while the run goes, with
//     additive increase and multiplicative decrease (AIMD), as TCP congestion
//     control and the AWS SDKs' adaptive retry mode do. See gateConfig.
//
// The auto control law, in one paragraph: the limit starts at Start (or just
// below a remembered learned rate) and grows by alphaFast = Max/4 per second
// of successful sending (10/s to 50/s in under four seconds with the default
// Max). A 429 sets the learned rate to the rate of successful answers over
// the second before it (capped by the limit; not below the last estimate
// while the limit was above it, see learnedAt) and cuts the limit to
// beta × learned (beta = 0.7), and the pool pauses for Retry-After. The limit
// then climbs back fast to 0.95 × learned, and from there probes slowly
// (0.25% of learned per second up to it, 1% above it), so that a quota once
// found costs a 429 (and a Retry-After pause) only every 15 to 20 seconds. Past 1.05 × learned with
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

	// Admission is a FIFO queue served at the limit: every request takes
	// a ticket (issued counts them), and ticket n may go once credit, which
	// grows at the limit outside pauses, reaches n. Credit runs ahead of
	// the tickets by at most the burst. A change of limit applies at once
	// to every request waiting, without releasing the queue in a burst; a
	// 429 empties the queue and bumps gen, which sends every waiting
	// request back for a new ticket after the pause.
	credit, issued float64
	gen            uint64
	burst          float64
	grown          time.Time // auto: when the limit was last grown
	created        time.Time
	holdTill       time.Time // 429s before this belong to the episode already cut for

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
	defaultStartRate = 10.0   // requests/s, a rate no API should mind
	defaultMaxRate   = 50.0   // requests/s, --max-rate's default
	minRate          = 0.5    // requests/s: the limit never goes below
	gateBeta         = 0.7    // multiplicative decrease on a 429 (TCP CUBIC, AWS adaptive retry)
	alphaFastShare   = 0.25   // additive increase per second, as a share of Max
	probeBelowShare  = 0.0025 // per second, as a share of learned, from approach to learned
	probeAboveShare  = 0.01   // per second, as a share of learned, from learned to stale
	approachShare    = 0.95   // the fast climb stops here, as a share of learned
	staleShare       = 1.05   // past this share of learned with no 429, learned is stale
	boundShare       = 0.8    // sending below this share of the limit: worker-bound
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
	g.created, g.grown = now, now
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
	g.credit = g.burst // the bucket starts full
	return g
}

// setLimit changes the limit and the burst that goes with it: a tenth of a
// second's worth, at least 1, at most the pool. The caller holds g.mu (or
// owns g).
func (g *gate) setLimit(l float64) {
	g.limit = l
	g.burst = float64(min(max(1, int(l/10)), max(1, g.workers)))
}

// wait blocks until a request may go, or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, t, paused := g.reserve(g.now())
		if paused {
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		stale := false
		for d > 0 && !stale {
			if err := sleep(ctx, d); err != nil {
				g.unreserve(t)
				return err
			}
			d, stale = g.admit(g.now(), t)
		}
		if !stale {
			return nil
		}
		// A 429 came while this request waited for its turn: take a new
		// ticket, at the new rate, after the pause.
	}
}

// ticket is a request's place in the gate's queue.
type ticket struct {
	n   float64
	gen uint64
}

// maxNap bounds one sleep of a waiting request, so that a higher limit
// applies to it soon.
const maxNap = 100 * time.Millisecond

// reserve is the first step of wait at time now. During a pause it returns
// the pause left and paused set, and takes nothing. Otherwise it gives the
// request a ticket: if delay is 0 the request may go now (and is counted as
// sent); if not, it must sleep delay and then ask admit.
func (g *gate) reserve(now time.Time) (delay time.Duration, t ticket, paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.pauseUntil.Sub(now); d > 0 {
		return d, ticket{gen: g.gen}, true
	}
	g.account(now)
	if g.mode == gateFixed && !g.slowUntil.IsZero() && !now.Before(g.slowUntil) {
		g.setLimit(g.base)
		g.slowUntil = time.Time{}
	}
	g.issued++
	t = ticket{n: g.issued, gen: g.gen}
	return g.turn(now, t), t, false
}

// admit is the next step of wait, once the request has slept: it returns
// 0 if the request may go now (and counts it as sent), how long to sleep
// before asking again, or stale if a 429 came since reserve and the request
// must reserve again.
func (g *gate) admit(now time.Time, t ticket) (delay time.Duration, stale bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.gen != g.gen {
		return 0, true
	}
	if d := g.pauseUntil.Sub(now); d > 0 {
		return d, false
	}
	g.account(now)
	return g.turn(now, t), false
}

// turn returns how long ticket t must still wait, at most maxNap, or 0 and
// counts the request as sent. The caller holds g.mu, with credit up to date.
func (g *gate) turn(now time.Time, t ticket) time.Duration {
	if g.mode != gateOpen && g.credit < t.n {
		d := time.Duration((t.n - g.credit) / g.limit * float64(time.Second))
		return min(max(d, time.Microsecond), maxNap)
	}
	g.hist.bin(now).sent++
	return 0
}

// unreserve gives the turn of a request that gave up waiting to the next.
func (g *gate) unreserve(t ticket) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.gen == g.gen {
		g.credit++
	}
}

// pausedFor returns how much of a pause is left at now.
func (g *gate) pausedFor(now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauseUntil.Sub(now)
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
	if g.mode == gateOpen || now.Before(g.pauseUntil) {
		return
	}
	dt := min(now.Sub(g.grown), maxGrowStep).Seconds()
	g.grown = now
	if dt <= 0 {
		return
	}
	if g.mode == gateFixed {
		// After a 429 cut, climb back to the operator's limit additively
		// (a quarter of it a second) rather than waiting out the slow period.
		if g.limit < g.base {
			g.setLimit(min(g.base, g.limit+alphaFastShare*g.base*dt))
		}
		return
	}
	if g.boundLocked(now) {
		return
	}
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
		case l < g.learned:
			l += probeBelowShare * g.learned * dt
		case l < stale:
			l += probeAboveShare * g.learned * dt
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
	resumed := g.pauseUntil // the end of the last pause
	if until := now.Add(retryAfter); until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
	if g.mode == gateAuto && now.Before(g.holdTill) {
		// Requests sent before the cut are still coming back: one cut
		// per episode, as TCP cuts once per window.
		return
	}
	g.learned = g.learnedAt(now, resumed)
	// Requests waiting at the old rate take a new ticket after the pause.
	g.gen++
	g.issued = g.credit
	switch g.mode {
	case gateFixed:
		g.setLimit(max(g.limit/2, g.base/8))
		g.slowUntil = now.Add(slowFor)
		g.grown = g.pauseUntil
	case gateAuto:
		g.holdTill = g.pauseUntil.Add(time.Second / 2)
		g.setLimit(min(max(gateBeta*g.learned, minRate), g.max))
		g.grown = g.pauseUntil
	}
}

// learnedAt estimates the quota at a 429: the rate of answers measured
// since the last pause, but not below the last estimate while the limit
// in force was above it. (Right after a pause the pool sends at 0.7 of the
// estimate, so a measurement then says little about the quota; a quota
// that really fell still brings the estimate down, once the limit is below
// it.) The caller holds g.mu.
func (g *gate) learnedAt(now, resumed time.Time) float64 {
	m := g.measured(now, resumed)
	if g.mode != gateAuto || g.learned <= 0 {
		return m
	}
	return max(m, min(g.learned, g.limit))
}

// measured returns the rate of successful answers over the last
// measureWindow (or since the last pause ended, if that is later), capped
// by the limit; the limit if there were too few to tell. The caller holds
// g.mu.
func (g *gate) measured(now, resumed time.Time) float64 {
	ok, _, _, _, span := g.hist.sum(now, later(g.created, resumed), measureWindow)
	if ok < 3 || span < measureWindow/4 {
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
	if g.mode != gateAuto {
		return g.limit, 0 // only the adaptive rate learns a quota
	}
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
	if throttled > 0 || allowed < 5 {
		return false
	}
	return float64(sent) < boundShare*allowed
}

// account adds what the limit allowed since the last call to the credit of
// the queue and to the history, leaving out pauses. The caller holds g.mu.
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
	g.credit = min(g.credit+now.Sub(from).Seconds()*g.limit, g.issued+g.burst)
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

// sum adds up the bins from the one holding now-span (or since, if later)
// to now, and returns the time they cover: from the start of the first, or
// since, to now.
func (h *history) sum(now, since time.Time, span time.Duration) (ok, sent, throttled int, allowed float64, covered time.Duration) {
	if span <= 0 {
		return
	}
	from := later(now.Add(-span), since).Truncate(binWidth)
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
