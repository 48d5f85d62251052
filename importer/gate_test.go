package importer

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// simServer is a server-side token bucket, like the sandbox's --quota: it
// accepts a request if a token is there, and otherwise answers 429 with a
// Retry-After of the time until the next token, in whole seconds, at least 1.
type simServer struct {
	rate, burst, tokens float64
	last                time.Time
}

func newSimServer(quota float64, start time.Time) *simServer {
	b := max(1, math.Floor(quota/10))
	return &simServer{rate: quota, burst: b, tokens: b, last: start}
}

func (s *simServer) arrive(t time.Time) (ok bool, retryAfter time.Duration) {
	s.tokens = min(s.burst, s.tokens+t.Sub(s.last).Seconds()*s.rate)
	s.last = t
	if s.tokens >= 1 {
		s.tokens--
		return true, 0
	}
	wait := (1 - s.tokens) / s.rate
	return false, time.Duration(max(1, math.Ceil(wait))) * time.Second
}

// simEvent is one step of one simulated worker.
type simEvent struct {
	at     time.Time
	kind   int // evReserve, evGo, evArrive, evAnswer, evSample
	worker int
	ok     bool
	ra     time.Duration
	rtt    time.Duration
	tk     ticket
	sent   bool // evGo: the gate already let it go
}

const (
	evReserve = iota
	evGo
	evArrive
	evAnswer
	evSample
)

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].kind < q[j].kind
	}
	return q[i].at.Before(q[j].at)
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simSpec describes one simulated run.
type simSpec struct {
	quota    float64
	cfg      gateConfig
	workers  int
	rtt      func(r *rand.Rand, t time.Duration) time.Duration // by elapsed time
	requests int                                               // stop after this many requests
}

// simResult is what a simulated run did.
type simResult struct {
	elapsed             time.Duration
	requests, throttled int
	accepted            int
	first429            time.Duration // when the first 429 came back (0: none)
	firstSettled        time.Duration // when the steady state began (-1: never)
	acceptedAt          []time.Duration
	steadyAccepted      int     // accepted after firstSettled
	limitSum, limitN    float64 // limit samples after firstSettled, every 100ms
	maxLimit            float64
	learned             float64
	boundSeen           bool
	samples             []float64 // the limit every 100ms
}

func (r simResult) share(quota float64) float64 {
	return float64(r.accepted) / r.elapsed.Seconds() / quota
}

func (r simResult) steadyShare(quota float64) float64 {
	d := r.elapsed - r.firstSettled
	return float64(r.steadyAccepted) / d.Seconds() / quota
}

var simTrace func(time.Duration, bool, float64)

// simulate runs workers through the gate against a simServer in simulated
// time. A worker does what the real one does: wait at the gate (reserve,
// wait for its token, then for any pause), send, and on a 429 tell the gate
// and retry after Retry-After; on success tell the gate and take the next
// row at once.
func simulate(t *testing.T, sp simSpec) simResult {
	t.Helper()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	cfg := sp.cfg
	cfg.Now = func() time.Time { return now }
	cfg.Workers = sp.workers
	g := newGateWith(cfg)
	srv := newSimServer(sp.quota, start)
	rnd := rand.New(rand.NewPCG(1, 2))
	target := sp.quota
	if cfg.Auto {
		target = min(target, cmp.Or(cfg.Max, defaultMaxRate))
	}
	var q simQueue
	for w := range sp.workers {
		heap.Push(&q, simEvent{at: start, kind: evReserve, worker: w})
	}
	heap.Push(&q, simEvent{at: start, kind: evSample})
	var res simResult
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		now = e.at
		switch e.kind {
		case evSample:
			l, _ := g.rates()
			res.samples = append(res.samples, l)
			res.maxLimit = max(res.maxLimit, l)
			if g.workerBound() {
				if !res.boundSeen && simTrace != nil {
					_, sent, thr, allowed, cov := g.hist.sum(now, g.created, boundWindow)
					println("bound at", now.Sub(start).String(), sent, thr, int(allowed), cov.String(), int(l))
				}
				res.boundSeen = true
			}
			if res.requests < sp.requests {
				heap.Push(&q, simEvent{at: now.Add(100 * time.Millisecond), kind: evSample})
			}
		case evReserve:
			if res.requests >= sp.requests {
				continue
			}
			d, tk, paused := g.reserve(now)
			switch {
			case paused:
				heap.Push(&q, simEvent{at: now.Add(d), kind: evReserve, worker: e.worker})
			case d > 0:
				heap.Push(&q, simEvent{at: now.Add(d), kind: evGo, worker: e.worker, tk: tk})
			default:
				heap.Push(&q, simEvent{at: now, kind: evGo, worker: e.worker, sent: true})
			}
		case evGo:
			if !e.sent {
				d, stale := g.admit(now, e.tk)
				if stale {
					heap.Push(&q, simEvent{at: now, kind: evReserve, worker: e.worker})
					continue
				}
				if d > 0 {
					heap.Push(&q, simEvent{at: now.Add(d), kind: evGo, worker: e.worker, tk: e.tk})
					continue
				}
			}
			res.requests++
			rtt := sp.rtt(rnd, now.Sub(start))
			heap.Push(&q, simEvent{at: now.Add(rtt / 2), kind: evArrive, worker: e.worker, rtt: rtt})
		case evArrive:
			ok, ra := srv.arrive(now)
			if simTrace != nil {
				simTrace(now.Sub(start), ok, srv.tokens)
			}
			heap.Push(&q, simEvent{at: now.Add(e.rtt - e.rtt/2), kind: evAnswer, worker: e.worker, ok: ok, ra: ra})
		case evAnswer:
			if e.ok {
				res.accepted++
				res.acceptedAt = append(res.acceptedAt, now.Sub(start))
				g.succeeded()
				heap.Push(&q, simEvent{at: now, kind: evReserve, worker: e.worker})
			} else {
				res.throttled++
				if res.first429 == 0 {
					res.first429 = now.Sub(start)
				}
				g.throttled(e.ra)
				heap.Push(&q, simEvent{at: now.Add(e.ra), kind: evReserve, worker: e.worker})
			}
		}
	}
	res.elapsed = now.Sub(start)
	_, res.learned = g.rates()
	// The steady state begins 3s after the first 429 (the pause, the cut
	// and the climb back are over), or without a 429 once the limit first
	// reaches 0.9 of the target.
	res.firstSettled = -1
	for i, l := range res.samples {
		at := time.Duration(i) * 100 * time.Millisecond
		if res.firstSettled < 0 && ((res.first429 > 0 && at >= res.first429+3*time.Second) || (res.first429 == 0 && l >= 0.9*target)) {
			res.firstSettled = at
		}
		if res.firstSettled >= 0 {
			res.limitSum += l
			res.limitN++
		}
	}
	for _, at := range res.acceptedAt {
		if res.firstSettled >= 0 && at >= res.firstSettled {
			res.steadyAccepted++
		}
	}
	return res
}

func jitter(lo, hi time.Duration) func(*rand.Rand, time.Duration) time.Duration {
	return func(r *rand.Rand, _ time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
}

func TestAdaptiveGateSimulation(t *testing.T) {
	cases := []struct {
		name        string
		sp          simSpec
		minSteady   float64 // accepted rate after settling, as a share of the quota
		minLimit    float64 // mean limit after settling, as a share of the quota
		max429      float64 // share of requests answered 429
		wantLearned bool
		learnedLo   float64 // share of the quota the learned rate may be as low as; default 0.85
	}{
		{"quota 50, default max 50", simSpec{quota: 50, cfg: gateConfig{Auto: true}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 1000}, 0.9, 0.9, 0.05, false, 0},
		{"quota 48, default max 50", simSpec{quota: 48, cfg: gateConfig{Auto: true}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 1000}, 0.9, 0.9, 0.05, true, 0},
		{"quota 30, default max 50", simSpec{quota: 30, cfg: gateConfig{Auto: true}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 1000}, 0.9, 0.9, 0.05, true, 0},
		{"quota 50, max 100, long", simSpec{quota: 50, cfg: gateConfig{Auto: true, Max: 100}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 5000}, 0.9, 0.9, 0.05, true, 0},
		{"quota 200, max 250", simSpec{quota: 200, cfg: gateConfig{Auto: true, Max: 250}, workers: 64, rtt: jitter(50*time.Millisecond, 150*time.Millisecond), requests: 1000}, 0.85, 0.85, 0.05, true, 0},
		{"quota 200, max 250, long", simSpec{quota: 200, cfg: gateConfig{Auto: true, Max: 250}, workers: 64, rtt: jitter(50*time.Millisecond, 150*time.Millisecond), requests: 10000}, 0.85, 0.85, 0.05, true, 0},
		// A quota of 5/s with the sandbox's burst of 1: any jitter in arrival
		// times makes a 429, so the rate settles lower.
		{"quota 5, default max", simSpec{quota: 5, cfg: gateConfig{Auto: true}, workers: 8, rtt: jitter(40*time.Millisecond, 60*time.Millisecond), requests: 1000}, 0.6, 0.75, 0.05, true, 0.7},
		{"quota 1000, max 50: never above Max", simSpec{quota: 1000, cfg: gateConfig{Auto: true}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 1000}, 0.95, 0.95, 0, false, 0},
		{"seeded with the learned 48", simSpec{quota: 48, cfg: gateConfig{Auto: true, Learned: 48}, workers: 16, rtt: jitter(40*time.Millisecond, 120*time.Millisecond), requests: 1000}, 0.9, 0.9, 0.05, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := simulate(t, c.sp)
			maxRate := c.sp.cfg.Max
			if maxRate == 0 {
				maxRate = defaultMaxRate
			}
			target := min(c.sp.quota, maxRate)
			share429 := float64(r.throttled) / float64(r.requests)
			meanLimit := r.limitSum / max(r.limitN, 1) / target
			t.Logf("%d requests in %.1fs: overall %.2f of the quota; first 429 at %.1fs; steady from %.1fs: %.2f of the quota, mean limit %.2f of it; 429s %d (%.1f%%); learned %.1f/s; max limit %.1f",
				r.requests, r.elapsed.Seconds(), r.share(target), r.first429.Seconds(), r.firstSettled.Seconds(), r.steadyShare(target), meanLimit, r.throttled, 100*share429, r.learned, r.maxLimit)
			if r.maxLimit > maxRate {
				t.Errorf("the limit reached %.1f, above Max %.1f", r.maxLimit, maxRate)
			}
			if r.firstSettled < 0 || r.firstSettled > 10*time.Second {
				t.Errorf("steady after %v", r.firstSettled)
			}
			if s := r.steadyShare(target); s < c.minSteady {
				t.Errorf("accepted %.2f of the quota after settling, want at least %.2f", s, c.minSteady)
			}
			if meanLimit < c.minLimit {
				t.Errorf("mean limit %.2f of the quota after settling, want at least %.2f", meanLimit, c.minLimit)
			}
			if share429 > c.max429 {
				t.Errorf("%.1f%% of requests got 429, want at most %.0f%%", 100*share429, 100*c.max429)
			}
			lo := c.learnedLo
			if lo == 0 {
				lo = 0.85
			}
			if c.wantLearned && (r.learned < lo*c.sp.quota || r.learned > 1.15*c.sp.quota) {
				t.Errorf("learned %.1f/s for a quota of %.0f/s", r.learned, c.sp.quota)
			}
			if r.boundSeen {
				t.Errorf("worker-bound with %d workers for %.0f/s", c.sp.workers, c.sp.quota)
			}
		})
	}
}

// fakeClock is a settable clock for gates under test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time            { return c.t }
func (c *fakeClock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                 { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) gate(cfg gateConfig) *gate { cfg.Now = c.now; return newGateWith(cfg) }

// drive sends at the gate's pace for d, every request succeeding, and
// returns how many went.
func drive(g *gate, c *fakeClock, d time.Duration) int {
	n := 0
	end := c.t.Add(d)
	for c.t.Before(end) {
		wait, tk, paused := g.reserve(c.t)
		for !paused && wait > 0 {
			c.add(wait)
			var stale bool
			if wait, stale = g.admit(c.t, tk); stale {
				paused = true
			}
		}
		if paused {
			c.add(max(wait, time.Millisecond))
			continue
		}
		n++
		g.succeeded()
	}
	return n
}

func TestAdaptiveGateFallsOn429(t *testing.T) {
	c := newFakeClock()
	g := c.gate(gateConfig{Auto: true, Start: 20, Max: 100, Workers: 8})
	drive(g, c, 3*time.Second)
	before, _ := g.rates()
	if before <= 20 {
		t.Fatalf("the limit did not grow: %v", before)
	}
	g.throttled(2 * time.Second)
	after, learned := g.rates()
	if learned <= 0 || learned > before {
		t.Errorf("learned %v with a limit of %v before the 429", learned, before)
	}
	if want := gateBeta * learned; math.Abs(after-want) > 1e-9 {
		t.Errorf("limit after a 429 = %v, want %v (0.7 × learned %v)", after, want, learned)
	}
	// The pool pauses for Retry-After.
	if d, _, paused := g.reserve(c.t); !paused || d != 2*time.Second {
		t.Errorf("reserve after a 429 = %v, paused %v; want a 2s pause", d, paused)
	}
	// More 429s of the same episode neither cut again nor shorten the pause.
	c.add(100 * time.Millisecond)
	g.throttled(time.Second)
	if l, _ := g.rates(); l != after {
		t.Errorf("a second 429 of the episode cut the limit to %v", l)
	}
	if d := g.pausedFor(c.t); d != 1900*time.Millisecond {
		t.Errorf("pause left %v, want 1.9s", d)
	}
	// A later episode cuts again, never below the floor.
	for range 40 {
		c.add(3 * time.Second)
		g.throttled(time.Second)
	}
	if l, _ := g.rates(); l != minRate {
		t.Errorf("limit after many 429s = %v, want the floor %v", l, minRate)
	}
	// Without a 429 the limit grows back, up to Max and no further.
	c.add(2 * time.Second)
	drive(g, c, 60*time.Second)
	if l, _ := g.rates(); l != 100 {
		t.Errorf("limit after a minute without 429 = %v, want Max 100", l)
	}
}

func TestAdaptiveGateSeedAndDefaults(t *testing.T) {
	c := newFakeClock()
	g := c.gate(gateConfig{Auto: true})
	if l, learned := g.rates(); l != defaultStartRate || learned != 0 {
		t.Errorf("default start: %v, learned %v", l, learned)
	}
	g = c.gate(gateConfig{Auto: true, Learned: 40})
	if l, learned := g.rates(); l != approachShare*40 || learned != 40 {
		t.Errorf("seeded with 40: limit %v, learned %v", l, learned)
	}
	g = c.gate(gateConfig{Auto: true, Learned: 400, Max: 50})
	if l, _ := g.rates(); l != 50 {
		t.Errorf("seeded above Max: limit %v", l)
	}
	g = c.gate(gateConfig{Auto: true, Start: 0.01})
	if l, _ := g.rates(); l != minRate {
		t.Errorf("start below the floor: limit %v", l)
	}
	// Reaches 50/s from 10/s in a few seconds when nothing refuses.
	g = c.gate(gateConfig{Auto: true, Workers: 16})
	drive(g, c, 5*time.Second)
	if l, _ := g.rates(); l != defaultMaxRate {
		t.Errorf("limit after 5s = %v, want %v", l, defaultMaxRate)
	}
	// A fixed gate stays fixed.
	g = c.gate(gateConfig{Fixed: 7, Auto: true})
	drive(g, c, 3*time.Second)
	if l, _ := g.rates(); l != 7 {
		t.Errorf("fixed gate at %v", l)
	}
}

func TestAdaptiveGateWorkerBound(t *testing.T) {
	// 4 workers and 200ms answers: 20 requests/s at most, below a 50/s
	// quota. The limit must stop growing a little above what the pool
	// sends, and say the pool is the bottleneck; no 429 comes.
	slow := func(_ *rand.Rand, at time.Duration) time.Duration {
		if at < 20*time.Second {
			return 200 * time.Millisecond
		}
		return 20 * time.Millisecond
	}
	r := simulate(t, simSpec{quota: 50, cfg: gateConfig{Auto: true}, workers: 4, rtt: slow, requests: 400})
	if !r.boundSeen {
		t.Error("never worker-bound with 4 workers at 200ms")
	}
	if r.throttled != 0 {
		t.Errorf("%d 429s", r.throttled)
	}
	if r.maxLimit > 36 {
		t.Errorf("the limit grew to %.1f while the pool sent 20/s", r.maxLimit)
	}
	t.Logf("worker-bound: limit at most %.1f", r.maxLimit)
	// Once answers are fast, the pool is no longer the bottleneck and the
	// limit grows again.
	r = simulate(t, simSpec{quota: 50, cfg: gateConfig{Auto: true}, workers: 4, rtt: slow, requests: 1400})
	if last := r.samples[len(r.samples)-1]; last < 45 {
		t.Errorf("after answers got fast the limit is %.1f", last)
	}

	// workerBound itself: sending at half the limit for 2s is bound; a
	// 429 in the window clears it; at the limit it is not bound.
	c := newFakeClock()
	g := c.gate(gateConfig{Fixed: 20, Workers: 4})
	if g.workerBound() {
		t.Error("bound at the start")
	}
	for range 30 {
		c.add(100 * time.Millisecond)
		if d, _, paused := g.reserve(c.t); paused || d != 0 {
			t.Fatalf("waited %v, paused %v at half the limit", d, paused)
		}
		g.succeeded()
	}
	if !g.workerBound() {
		t.Error("not bound while sending at half the limit")
	}
	g.throttled(time.Millisecond)
	c.add(10 * time.Millisecond)
	if g.workerBound() {
		t.Error("bound with a 429 in the window")
	}
	c = newFakeClock()
	g = c.gate(gateConfig{Fixed: 20, Workers: 4})
	drive(g, c, 3*time.Second)
	if g.workerBound() {
		t.Error("bound while sending at the limit")
	}
	if open := newGate(0, 4); open.workerBound() {
		t.Error("bound without a limit")
	}
}

func TestGateWaitCancel(t *testing.T) {
	g := newGateWith(gateConfig{Fixed: 0.5, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.wait(ctx); err != nil { // the burst
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.wait(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("wait = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("wait did not return after cancel")
	}
}
