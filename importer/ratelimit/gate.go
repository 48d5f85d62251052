package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// Gate is the run's one control loop for rate and concurrency. Every
// request of the pool goes through it in three steps: acquire takes a slot
// of the concurrency window (before the row's photo is loaded), send waits
// for the request's turn at the rate limit (and for any pause or open
// breaker), and done records the answer and gives the slot back.
//
// Rate. It has three modes:
//
//   - no limit (--rate 0): only the pauses of a 429 episode and the breaker;
//   - fixed (--rate R): R per second; an episode cuts it once, and it climbs
//     back to R additively;
//   - auto (--rate auto): the limit is discovered while the run goes, with
//     additive increase and multiplicative decrease (AIMD), as TCP
//     congestion control and the AWS SDKs' adaptive retry mode do.
//
// A single 429 is noise, not a quota: it delays only its own row. An
// episode is a share of throttled answers above episodeShare over a window
// of several answer times (gate_episode.go), counting only requests sent
// after the last cut; only an episode pauses the pool for its Retry-After
// and cuts the rate, once, to gateBeta times the rate of answers measured
// over that window (a first measure of the learned quota). Once the
// requests sent before the cut are answered, the quota is measured again
// by send time (gate_measure.go) and the limit follows. Growth resumes
// after a hold of an answer time: fast back to approachShare of the
// learned quota, then slowly above it, then fast again past staleShare of
// it (the quota grew), the probe doubling every few answer times. When
// probes above the learned quota meet more 429s than requests under it
// (with confidence, and by more than the noise), the quota is about there:
// the limit steps back by twice the share refused (to gateBeta of the
// quota at least) and holds for an answer time, without a pause (probes
// sent before a step no longer count), and a learned quota the probes
// found stale is raised to what the service accepted of them. When the
// requests sent just under the learned quota meet more 429s than those
// well below it, the quota was learned a little high: it is lowered to
// what they were accepted at. The run settles at the quota. While the
// pool sends well below the limit (it is application-limited, RFC 7661)
// the limit does not grow. The limit never leaves [minRate, Max].
//
// Concurrency (gate_window.go): with automatic workers the window follows
// what the rate needs by Little's law, rate × recent answer time with
// headroom, between 1 and the pool's size; with a fixed --workers it is
// the pool.
//
// Outages (gate_breaker.go): when every answer for outageAfter was a
// connection error, a time-out or a 5xx, the pool stops sending and probes
// with one request at a time, the interval doubling from 1s to 30s; the
// first good answer closes it.
type Gate struct {
	now  func() time.Time
	mode gateMode

	mu      sync.Mutex
	limit   float64 // requests per second; 0 in gateOpen mode
	base    float64 // fixed mode: the configured rate
	max     float64 // auto mode: the ceiling
	learned float64 // the quota found at the last episode (or remembered); 0: none
	workers int

	// Admission to the rate is a FIFO queue served at the limit: every
	// request takes a ticket (issued counts them), and ticket n may go once
	// credit, which grows at the limit outside pauses, reaches n. Credit
	// runs ahead of the tickets by at most the burst. A change of limit
	// applies at once to every request waiting, without releasing the
	// queue in a burst; an episode or an opening breaker empties the queue
	// and bumps gen, which sends every waiting request back for a new
	// ticket.
	credit, issued float64
	gen            uint64
	burst          float64
	grown          time.Time // when the limit was last grown
	staleAt        time.Time // when the limit passed staleShare of learned
	created        time.Time
	holdTill       time.Time // the limit does not grow before this
	pauseUntil     time.Time
	rateWaited     time.Time // when a request last had to wait for its turn

	hist  history  // sent and allowed, for the application-limited test
	sends sendLog  // requests by send time, to measure an episode's quota again
	ep    episodes // 429 episodes and the learned quota
	win   window   // the concurrency window
	br    breaker  // the outage breaker
}

// gateTrace, when set (tests), is told of every cut.
var gateTrace func(now time.Time, what string, rate, limit float64)

type gateMode int

const (
	gateOpen gateMode = iota
	gateFixed
	gateAuto
)

// Config configures a gate.
type Config struct {
	// Fixed, if positive, is a fixed limit in requests per second.
	Fixed float64
	// Auto selects the adaptive rate (ignored when Fixed is positive).
	// With neither, the gate only pauses for episodes and outages.
	Auto bool
	// Start is the adaptive rate's first limit; default a tenth of Max,
	// at least defaultStartRate.
	Start float64
	// Max is the adaptive rate's ceiling; default defaultMaxRate.
	Max float64
	// Learned seeds the adaptive rate with the quota a previous run found
	// sustained for this endpoint (0: none): the run starts near it and
	// probes upward.
	Learned float64
	// Workers is the size of the pool: the most requests in flight. It
	// caps the burst.
	Workers int
	// AutoWindow makes the concurrency window follow the rate (Little's
	// law) between 1 and Workers; otherwise it is Workers.
	AutoWindow bool
	// OutageLimit ends a run whose breaker stayed open this long (0: never).
	OutageLimit time.Duration
	// Now replaces the clock (tests, simulations); default time.Now.
	Now func() time.Time
}

// Constants of the adaptive rate.
const (
	defaultStartRate = 10.0            // requests/s, a rate no API should mind
	startShare       = 0.1             // or this share of Max, if higher
	defaultMaxRate   = 50.0            // requests/s, --max-rate's default
	minRate          = 0.5             // requests/s: the limit never goes below
	gateBeta         = 0.9             // multiplicative decrease of an episode, from a quota measured by what it accepted
	minCutShare      = 0.5             // an episode measures the quota at this share of the learned one at least
	alphaFastShare   = 0.25            // additive increase per answer time (at least fastRTT), as a share of Max
	probeShare       = 0.0025          // per second, as a share of learned, from approach to stale
	probeSlowShare   = 0.001           // the same once the quota is stable
	approachShare    = 0.98            // the fast climb stops here, as a share of learned
	staleShare       = 1.05            // past this share of learned with no episode, learned is stale
	probeDoubling    = 4               // the probe doubles every this many answer times
	minDoubling      = 2 * time.Second // and at most this often
	boundShare       = 0.8             // sending below this share of the limit: application-limited
	boundWindow      = 2 * time.Second
	maxGrowStep      = time.Second // the most time one success may count for
	holdAnswers      = 1           // growth resumes this many answer times after a pause
	noiseBelow       = 0.95        // 429s of requests sent below this share of learned are noise
	minHold          = time.Second
	fastRTT          = 0.25 // the fast climb is alphaFastShare of Max per answer time (at least this many seconds)
)

// New returns a gate configured by c.
func New(c Config) *Gate {
	g := &Gate{now: c.Now, workers: max(c.Workers, 1)}
	if g.now == nil {
		g.now = time.Now
	}
	now := g.now()
	g.created, g.grown = now, now
	g.ep.since = now
	g.win = window{auto: c.AutoWindow, max: g.workers, size: g.workers}
	g.br = breaker{limit: c.OutageLimit}
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
			start = max(defaultStartRate, g.max*startShare)
		}
		if c.Learned > 0 && !math.IsInf(c.Learned, 0) {
			g.learned = c.Learned
			start = approachShare * c.Learned
		}
		g.setLimit(g.bounded(start))
	}
	g.credit = g.burst // the bucket starts full
	g.resize()
	return g
}

// setLimit changes the limit and the burst that goes with it: a tenth of a
// second's worth, at least 1, at most the pool; and resizes the window.
// The caller holds g.mu (or owns g).
func (g *Gate) setLimit(l float64) {
	g.limit = l
	g.burst = float64(min(max(1, int(l/10)), g.workers))
	g.resize()
}

// Slot is one request's place in the window, from Acquire to Done (or
// Release). Its fields are the gate's own.
type Slot struct {
	got  time.Time // when the slot was taken
	sent time.Time // when the request went (zero: not yet)
	cut  uint64    // the episode count when it went
	// probe marks the one request an open breaker let through.
	probe bool
	// ready: the row asked to send (its preparation time is counted).
	ready bool
	// limit is the rate limit in force when it went (0: none).
	limit float64
}

// Outcome is what an answer says to the gate, as the caller classifies it.
type Outcome int

// The outcomes.
const (
	OK        Outcome = iota // an answer of the service's (enrolled, refused...)
	Throttled                // HTTP 429
	Down                     // a 5xx, a time-out, a refused or dropped connection
	Foreign                  // an answer that is not the service's (a proxy's page)
)

// Send waits until the request holding sl may go, or ctx ends, or the
// breaker has been open longer than the outage limit (an *OutageError).
// It returns the slot stamped as sent.
func (g *Gate) Send(ctx context.Context, sl Slot) (Slot, error) {
	for {
		if err := ctx.Err(); err != nil {
			return sl, err
		}
		st := g.reserve(g.now(), &sl)
		if st.err != nil {
			return sl, st.err
		}
		if st.paused {
			if err := Sleep(ctx, st.delay); err != nil {
				return sl, err
			}
			continue
		}
		d, stale := st.delay, false
		for d > 0 && !stale {
			if err := Sleep(ctx, d); err != nil {
				g.unreserve(st.t)
				return sl, err
			}
			d, stale = g.admit(g.now(), st.t, &sl)
		}
		if !stale {
			return sl, nil
		}
		// An episode or an outage came while this request waited for its
		// turn: take a new ticket, at the new rate, after the pause.
	}
}

// ticket is a request's place in the rate's queue.
type ticket struct {
	n   float64
	gen uint64
}

// reservation is what reserve decided.
type reservation struct {
	delay  time.Duration
	t      ticket
	paused bool  // wait delay, then reserve again
	err    error // the outage limit is over
}

// maxNap bounds one sleep of a waiting request, so that a higher limit
// applies to it soon.
const maxNap = 100 * time.Millisecond

// reserve is the first step of send at time now. During a pause or an
// open breaker it returns paused with the wait, and takes nothing (unless
// the request is the breaker's probe: then it goes at once). Otherwise it
// gives the request a ticket: if the delay is 0 the request may go now
// (and sl is stamped as sent); if not, it must sleep the delay and then
// ask admit.
func (g *Gate) reserve(now time.Time, sl *Slot) reservation {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !sl.got.IsZero() && !sl.ready {
		// The time from the slot to the first ask is the row's own (its
		// photo); waiting for a turn is not counted.
		sl.ready = true
		g.win.prepared(now.Sub(sl.got))
	}
	if g.br.open {
		d, probe, err := g.br.admit(now)
		if err != nil || !probe {
			return reservation{delay: d, paused: true, err: err}
		}
		sl.probe = true
		g.sentLocked(now, sl)
		return reservation{}
	}
	if d := g.pauseUntil.Sub(now); d > 0 {
		return reservation{delay: d, t: ticket{gen: g.gen}, paused: true}
	}
	g.account(now)
	g.issued++
	t := ticket{n: g.issued, gen: g.gen}
	return reservation{delay: g.turn(now, t, sl), t: t}
}

// admit is the next step of send, once the request has slept: it returns
// 0 if the request may go now (and stamps sl), how long to sleep before
// asking again, or stale if an episode or an outage came since reserve and
// the request must reserve again.
func (g *Gate) admit(now time.Time, t ticket, sl *Slot) (delay time.Duration, stale bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.gen != g.gen || g.br.open {
		return 0, true
	}
	if d := g.pauseUntil.Sub(now); d > 0 {
		return d, false
	}
	g.account(now)
	return g.turn(now, t, sl), false
}

// turn returns how long ticket t must still wait, at most maxNap, or 0 and
// stamps sl as sent. The caller holds g.mu, with credit up to date.
func (g *Gate) turn(now time.Time, t ticket, sl *Slot) time.Duration {
	if g.mode != gateOpen && g.credit < t.n {
		g.rateWaited = now
		d := time.Duration((t.n - g.credit) / g.limit * float64(time.Second))
		return min(max(d, time.Microsecond), maxNap)
	}
	g.sentLocked(now, sl)
	return 0
}

// sentLocked counts the request of sl as sent at now. The caller holds g.mu.
func (g *Gate) sentLocked(now time.Time, sl *Slot) {
	g.hist.bin(now).sent++
	g.sends.sent(now)
	g.win.sent()
	sl.sent, sl.cut, sl.limit = now, g.ep.cuts, g.limit
}

// unreserve gives the turn of a request that gave up waiting to the next.
func (g *Gate) unreserve(t ticket) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.gen == g.gen {
		g.credit++
	}
}

// Verdict is what Done tells the worker about its answer.
type Verdict struct {
	// outage: the breaker is open; a request that failed for it does not
	// use up a retry.
	Outage bool
	// episode: the answer belongs to a 429 episode that paused the pool.
	Episode bool
}

// Done records the answer o to the request of sl (sent, or not if the row
// ended before sending) and gives its slot back. retryAfter is a 429's
// Retry-After.
func (g *Gate) Done(sl Slot, o Outcome, retryAfter time.Duration) Verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.win.free(now, sl)
	if sl.sent.IsZero() {
		g.resize()
		return Verdict{}
	}
	g.account(now)
	if g.sends.answered(now, sl.sent, sl.cut, o) {
		g.remeasure(now)
	}
	var v Verdict
	cur := sl.cut == g.ep.cuts // sent after the last cut
	if cur && o != Foreign {
		g.ep.answer(now, o == Throttled, sl.limit, g.band(sl))
	}
	switch o {
	case OK:
		g.br.good(now)
		g.hist.bin(now).ok++
		g.grow(now)
	case Throttled:
		g.br.good(now) // the service answers: no outage
		if cur {
			if rate, ok := g.ep.detect(now, g.win.answerTime(), g.resumed()); ok {
				g.cut(now, rate, retryAfter)
			}
		}
		v.Episode = now.Before(g.pauseUntil)
	case Down:
		if g.br.down(now, sl.probe) {
			// The breaker opened: requests waiting for their turn wait
			// for it instead.
			g.gen++
			g.issued = g.credit
		}
	}
	if sl.probe {
		g.br.probing = false
	}
	v.Outage = g.br.open
	g.resize()
	return v
}

// Release gives back the slot of a request that was not sent (the row
// ended before, or waits out a delay of its own).
func (g *Gate) Release(sl Slot) {
	if !sl.sent.IsZero() {
		// Sent, but nothing to learn from (its photo failed as it went
		// out): it is no longer in flight.
		g.mu.Lock()
		g.win.inFlight = max(g.win.inFlight-1, 0)
		g.mu.Unlock()
	}
	g.Done(Slot{got: sl.got}, Foreign, 0)
}

// band is where the request of sl was sent against the learned quota.
// The caller holds g.mu.
func (g *Gate) band(sl Slot) band {
	switch {
	case g.mode != gateAuto || g.learned <= 0 || sl.limit <= 0:
		return bandNone
	case sl.limit <= noiseBelow*g.learned:
		return bandBelow
	case sl.limit <= g.learned:
		return bandNear
	case sl.sent.Before(g.ep.steppedAt):
		return bandNone // a probe sent before the last step back
	}
	return bandAbove
}

// resumed is when sending resumed after the last pause. The caller holds g.mu.
func (g *Gate) resumed() time.Time { return later(g.created, g.pauseUntil) }

// cut is an episode at now: the learned quota is rate, the pool pauses for
// retryAfter (1s if the server named none), and the limit is cut once. The
// caller holds g.mu.
func (g *Gate) cut(now time.Time, rate float64, retryAfter time.Duration) {
	// The requests of the episode went from the last cut or pause.
	from := later(g.ep.since, g.resumed())
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	if until := now.Add(retryAfter); until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
	g.holdTill = g.pauseUntil.Add(max(minHold, holdAnswers*g.win.answerTime()))
	g.grown = g.holdTill
	// Requests waiting at the old rate take a new ticket after the pause.
	g.gen++
	g.issued = g.credit
	if g.learned > 0 {
		// One episode at most halves a learned quota: an episode found
		// in a handful of answers (noise right after a cut) measures a
		// rate that says nothing, and a quota that fell further is
		// found by the next one.
		rate = max(rate, minCutShare*g.learned)
	}
	if g.limit > 0 {
		rate = min(rate, g.limit)
	}
	g.sends.start(now, from, g.win.inFlight, g.ep.cuts, g.win.answerTime(), g.learned, g.ep.sentAt, rate)
	g.ep.cutAt(now, rate)
	if gateTrace != nil {
		gateTrace(now, "cut", rate, g.limit)
	}
	switch g.mode {
	case gateFixed:
		g.setLimit(max(gateBeta*rate, g.base/8, minRate))
	case gateAuto:
		g.relearn(rate)
		g.setLimit(g.bounded(gateBeta * rate))
	}
}

// remeasure applies the measure by send time of the last episode, once
// its requests have been answered: it replaces the quota the episode
// found by answer time (with the same bound: at most half of the quota
// learned before it), and the limit follows. The caller holds g.mu.
func (g *Gate) remeasure(now time.Time) {
	rate, ok := g.sends.measure(g.ep.noise())
	if !ok || g.mode == gateOpen {
		return
	}
	if r := g.sends.refusedAt; rate < pathologicalShare*r {
		// A bucket of one request refuses every other request as soon
		// as the rate passes it: what it accepts is half its quota.
		rate = r
	}
	// The measure by send time corrects the first one, by little when
	// lower: a small bucket that refuses every other request of a rate a
	// hair above it accepts less than its quota.
	rate = max(rate, remeasureFloor*g.sends.first)
	if l := g.sends.learnedBefore; l > 0 {
		rate = max(rate, minCutShare*l)
	}
	g.ep.remeasured(rate)
	if gateTrace != nil {
		gateTrace(now, "measure", rate, g.limit)
	}
	switch g.mode {
	case gateFixed:
		if now.Before(g.holdTill) {
			g.setLimit(min(max(gateBeta*rate, g.base/8, minRate), g.base))
		}
	case gateAuto:
		g.relearn(rate)
		switch {
		case now.Before(g.holdTill):
			g.setLimit(g.bounded(gateBeta * rate))
		case g.limit > approachShare*rate:
			g.setLimit(g.bounded(approachShare * rate))
		}
	}
}

// relearn sets the learned quota. The noise measured below the old one
// is forgotten if the new one is lower than that: those requests may have
// been sent above it. The caller holds g.mu.
func (g *Gate) relearn(q float64) {
	if q < noiseBelow*g.learned {
		g.ep.below = tally{}
	}
	g.ep.near = tally{} // sent near another quota
	g.learned = q
}

// grow grows the limit by the time since the last growth, unless the pool
// is paused, holding after an episode, or application-limited. The caller
// holds g.mu, with the history up to date.
func (g *Gate) grow(now time.Time) {
	if g.mode == gateOpen || now.Before(g.holdTill) || now.Before(g.pauseUntil) {
		return
	}
	dt := min(now.Sub(g.grown), maxGrowStep).Seconds()
	g.grown = now
	if dt <= 0 {
		return
	}
	if g.mode == gateFixed {
		// After a cut, climb back to the operator's limit additively (a
		// quarter of it a second).
		if g.limit < g.base {
			g.setLimit(min(g.base, g.limit+alphaFastShare*g.base*dt))
		}
		return
	}
	if g.boundLocked(now) {
		return
	}
	if g.learned > 0 {
		if x, accepted := g.ep.probing(now, max(minHold, g.win.answerTime())); x > 0 {
			// Probes above the learned quota meet more 429s than
			// requests under it: the quota is about here. The limit
			// steps back by twice the share refused, never below
			// gateBeta of the learned quota (the probes' 429s say
			// nothing of the rates under it), and holds there for an
			// answer time, until the answers to what it sends now come
			// back.
			if accepted > staleShare*g.learned {
				// Well above the learned quota: that was stale (the
				// quota grew, or the episode measured it low). What it
				// accepted of the probes is the quota now.
				g.relearn(accepted)
			}
			g.setLimit(max(gateBeta*g.learned, min(g.limit, g.limit*(1-2*x))))
			if gateTrace != nil {
				gateTrace(now, "step", accepted, g.limit)
			}
			g.ep.steppedAt = now
			g.holdAnswer(now)
			return
		}
		if q, ok := g.ep.overLearned(); ok {
			// Requests sent just under the learned quota meet more 429s
			// than those well below it: it was learned a little high
			// (an episode measures a bucket's burst too). What they were
			// accepted at is the quota, down to gateBeta of it at most,
			// and the limit comes under it.
			g.relearn(max(q, gateBeta*g.learned))
			g.setLimit(min(g.limit, max(approachShare*g.learned, minRate)))
			if gateTrace != nil {
				gateTrace(now, "lower", g.learned, g.limit)
			}
			g.holdAnswer(now)
			return
		}
	}
	g.setLimit(g.grown1(g.limit, dt))
}

// holdAnswer holds the limit where it is for an answer time from now,
// until the answers to what it sends now come back, and starts the probe
// over. The caller holds g.mu.
func (g *Gate) holdAnswer(now time.Time) {
	g.staleAt = time.Time{}
	g.holdTill = now.Add(g.win.answerTime())
	g.grown = g.holdTill
}

// grown1 returns the adaptive limit l after dt seconds of additive increase.
func (g *Gate) grown1(l, dt float64) float64 {
	fast := alphaFastShare * g.max / max(fastRTT, g.win.answerTime().Seconds())
	if g.learned > 0 {
		approach := approachShare * g.learned
		if l < approach {
			// Fast back up to just below the learned rate, but no further
			// in one step.
			g.staleAt = time.Time{}
			return g.bounded(min(l+fast*dt, approach))
		}
		// Probe: slowly at first, more slowly once the last episodes found
		// the same quota (each probe past it costs 429s), then faster and
		// faster, doubling every probeDoubling answer times, as a quota
		// that does not answer the probes may have grown (or been learned
		// low). A probe's 429s start over (probing).
		if g.staleAt.IsZero() {
			g.staleAt = g.grown
		}
		probe := probeShare
		if g.ep.stable() && l < staleShare*g.learned {
			probe = probeSlowShare
		}
		up := g.grown.Sub(g.staleAt).Seconds() / max(minDoubling.Seconds(), probeDoubling*g.win.answerTime().Seconds())
		l += min(fast, probe*g.learned*math.Exp2(up)) * dt
	} else {
		l += fast * dt
	}
	return g.bounded(l)
}

// bounded returns the adaptive limit l within [minRate, Max].
func (g *Gate) bounded(l float64) float64 { return min(max(l, minRate), g.max) }

// Rates returns the limit in force (0: none) and the learned quota (0: none
// found yet), in requests per second.
func (g *Gate) Rates() (current, learned float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode != gateAuto {
		return g.limit, 0 // only the adaptive rate learns a quota
	}
	return g.limit, g.learned
}

// SustainedQuota returns the quota to remember for the next run: the rate
// the last episodes measured, if they were several at a similar rate (a
// sustained limit, not a bad minute); 0 otherwise.
func (g *Gate) SustainedQuota() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode != gateAuto {
		return 0
	}
	return g.ep.sustained()
}

// Control returns the state of the control, as every display shows it.
func (g *Gate) Control() Control {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.account(now)
	if g.sends.due(now) {
		// An episode whose answers stopped coming (rows that ended
		// otherwise) is measured when its wait is over, even if no answer
		// comes to do it in Done.
		g.remeasure(now)
	}
	c := Control{Rate: g.limit, InFlight: int64(g.win.inFlight), Window: g.win.size}
	if g.mode == gateAuto {
		c.LearnedRate = g.learned
	}
	c.Limiter = g.limiterLocked(now)
	if g.br.open {
		c.DownSince = g.br.since
	}
	return c
}

// recently is how far back the control looks to say what holds the run back.
const recently = time.Second

// limiterLocked says what holds the run back at now, when something in
// particular does. The caller holds g.mu, with the history up to date.
func (g *Gate) limiterLocked(now time.Time) Limiter {
	full := now.Sub(g.win.fullAt) < recently
	rateBound := now.Sub(g.rateWaited) < recently || now.Before(g.pauseUntil)
	switch {
	case g.br.open:
		return LimitOutage
	case full && g.win.size >= g.win.max && !rateBound:
		return LimitWorkers
	case g.mode == gateAuto && g.ep.cuts > 0 && g.learned > 0 && g.limit <= staleShare*g.learned:
		return LimitQuota
	}
	if g.mode == gateOpen || now.Sub(g.created) < boundWindow/2 {
		return LimitNone
	}
	if g.boundLocked(now) && !full {
		if g.win.preparing() > g.win.inFlight {
			return LimitPhotos
		}
		return LimitManifest
	}
	switch {
	case g.mode == gateAuto && g.limit >= g.max:
		return LimitMaxRate
	case g.mode == gateFixed && rateBound:
		return LimitRate
	}
	return LimitNone
}

// boundLocked reports whether, over the last few seconds, requests went
// out well below the limit: something else than the gate (the workers,
// the manifest, the photos) holds the run back; always false without a
// limit. The caller holds g.mu, with the history up to date.
func (g *Gate) boundLocked(now time.Time) bool {
	if g.mode == gateOpen || now.Sub(g.created) < boundWindow/2 {
		return false
	}
	_, sent, allowed, _ := g.hist.sum(now, g.created, boundWindow)
	if allowed < 5 {
		return false
	}
	return float64(sent) < boundShare*allowed
}

// account adds what the limit allowed since the last call to the credit of
// the queue and to the history, leaving out pauses. The caller holds g.mu.
func (g *Gate) account(now time.Time) {
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
