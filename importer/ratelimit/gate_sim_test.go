package ratelimit

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The gate's simulator: a pool of workers goes through the gate (acquire,
// send, done) against a simulated server, on a virtual clock: nothing
// sleeps, so a grid of long runs takes seconds and measures the gate's
// decisions, not the machine.

// simServer is the server side: a token bucket like the sandbox's --quota
// (0: none), sparse 429s and 5xx at random (noise), and an outage.
type simServer struct {
	quota       func(at time.Duration) float64 // 0: no quota
	burst       float64
	tokens      float64
	last        time.Duration
	p429, p5xx  float64
	down, up    time.Duration // an outage from down to up (equal: none)
	rnd         *rand.Rand
	quota429    int // 429s for the quota (not noise)
	noise429    int
	noise5xx    int
	downAnswers int // requests that met the outage
}

// arrive is a request reaching the server at. It answers o, with a
// Retry-After for a 429.
func (s *simServer) arrive(at time.Duration) (Outcome, time.Duration) {
	if at >= s.down && at < s.up {
		s.downAnswers++
		return Down, 0
	}
	// The quota is checked first, as the sandbox does: a request that
	// then meets noise has used its token.
	if q := s.quota(at); q > 0 {
		if s.burst == 0 {
			s.tokens = max(1, math.Floor(q/10)) // a new bucket starts full, as the sandbox's
		}
		s.burst = max(1, math.Floor(q/10))
		s.tokens = min(s.burst, s.tokens+(at-s.last).Seconds()*q)
		s.last = at
		if s.tokens < 1 {
			s.quota429++
			wait := (1 - s.tokens) / q
			return Throttled, time.Duration(max(1, math.Ceil(wait))) * time.Second
		}
		s.tokens--
	}
	switch x := s.rnd.Float64(); {
	case x < s.p429:
		s.noise429++
		return Throttled, time.Second
	case x < s.p429+s.p5xx:
		s.noise5xx++
		return Down, 0
	}
	return OK, 0
}

// simArrive is how long a request takes to reach the server's rate
// limiter: the answer time is spent after it (checking the photo), as in
// the sandbox, whose latency comes after its quota.
const simArrive = 5 * time.Millisecond

// simSpec describes one simulated run.
type simSpec struct {
	quota    func(at time.Duration) float64
	p429     float64
	p5xx     float64
	down, up time.Duration
	cfg      Config
	rtt      func(r *rand.Rand) time.Duration
	duration time.Duration // the run's length
	from     time.Duration // the figures count from here to the end
	retries  int
	seed     uint64
}

// simResult is what a simulated run did between from and the end.
type simResult struct {
	seconds     float64
	sent        int // requests sent
	enrolled    int // rows enrolled (answers OK)
	quota429    int // 429s of the quota, to requests sent in the period
	failed      int // rows failed (over the whole run)
	probesDown  int // requests sent while the breaker was open
	maxWindow   int
	maxInFlight int
	sustained   float64
	learned     float64
	limiters    map[Limiter]int // samples every 100ms by what held the run back
	outageSeen  bool
	cuts        uint64
}

func (r simResult) sentRate() float64     { return float64(r.sent) / r.seconds }
func (r simResult) enrolledRate() float64 { return float64(r.enrolled) / r.seconds }

const (
	evAcquire = iota
	evSend
	evAdmit
	evArrive
	evAnswer
	evSample
)

type simEvent struct {
	at     time.Duration
	seq    int
	kind   int
	worker int
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at == q[j].at {
		return q[i].seq < q[j].seq
	}
	return q[i].at < q[j].at
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simWorker is one worker's row in progress.
type simWorker struct {
	sl    Slot
	t     ticket
	try   int
	o     Outcome
	ra    time.Duration
	rtt   time.Duration
	count bool // sent in the measured period
}

// simDebug, when set, is told of every arrival and answer.
var simDebug func(el time.Duration, what string, g *Gate)

// simulate runs a pool through the gate against a simServer.
func simulate(t *testing.T, sp simSpec) simResult {
	t.Helper()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var el time.Duration
	cfg := sp.cfg
	cfg.Now = func() time.Time { return start.Add(el) }
	g := New(cfg)
	rnd := rand.New(rand.NewPCG(sp.seed, 7))
	srv := &simServer{quota: sp.quota, p429: sp.p429, p5xx: sp.p5xx, down: sp.down, up: sp.up, rnd: rnd}
	if srv.quota == nil {
		srv.quota = func(time.Duration) float64 { return 0 }
	}
	retries := sp.retries
	if retries == 0 {
		retries = 5
	}
	workers := make([]simWorker, g.workers)
	var q simQueue
	seq := 0
	push := func(at time.Duration, kind, w int) {
		seq++
		heap.Push(&q, simEvent{at: at, seq: seq, kind: kind, worker: w})
	}
	for w := range workers {
		push(0, evAcquire, w)
	}
	push(0, evSample, -1)
	var blocked []int
	res := simResult{limiters: map[Limiter]int{}}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		if e.at > sp.duration {
			break
		}
		el = e.at
		now := start.Add(el)
		if e.kind == evSample {
			c := g.Control()
			res.limiters[c.Limiter]++
			res.maxWindow = max(res.maxWindow, c.Window)
			res.maxInFlight = max(res.maxInFlight, int(c.InFlight))
			if c.Limiter == LimitOutage {
				res.outageSeen = true
			}
			push(el+100*time.Millisecond, evSample, -1)
			continue
		}
		w := &workers[e.worker]
		goOut := func() {
			if g.br.open || w.sl.probe {
				res.probesDown++
			}
			w.count = el >= sp.from
			if w.count {
				res.sent++
			}
			w.rtt = sp.rtt(rnd)
			push(el+min(simArrive, w.rtt), evArrive, e.worker)
		}
		switch e.kind {
		case evAcquire:
			sl, ok := g.tryAcquire(now)
			if !ok {
				blocked = append(blocked, e.worker)
				continue
			}
			w.sl = sl
			push(el, evSend, e.worker)
		case evSend:
			st := g.reserve(now, &w.sl)
			switch {
			case st.err != nil:
				t.Fatalf("outage limit at %v: %v", el, st.err)
			case st.paused:
				push(el+st.delay, evSend, e.worker)
			case st.delay > 0:
				w.t = st.t
				push(el+st.delay, evAdmit, e.worker)
			default:
				goOut()
			}
		case evAdmit:
			d, stale := g.admit(now, w.t, &w.sl)
			switch {
			case stale:
				push(el, evSend, e.worker)
			case d > 0:
				push(el+d, evAdmit, e.worker)
			default:
				goOut()
			}
		case evArrive:
			n := srv.quota429
			w.o, w.ra = srv.arrive(el)
			if simDebug != nil {
				simDebug(el, fmt.Sprintf("arrive w%d %v", e.worker, w.o), g)
			}
			if srv.quota429 > n && w.count {
				res.quota429++
			}
			push(el+w.rtt-min(simArrive, w.rtt), evAnswer, e.worker)
		case evAnswer:
			v := g.Done(w.sl, w.o, w.ra)
			if simDebug != nil {
				simDebug(el, fmt.Sprintf("answer w%d %v %+v", e.worker, w.o, v), g)
			}
			// Workers waiting for a slot take the ones free now, in turn
			// (waking them all to find most still blocked costs the
			// simulator, not the gate).
			for len(blocked) > 0 {
				sl, ok := g.tryAcquire(now)
				if !ok {
					break
				}
				workers[blocked[0]].sl = sl
				push(el, evSend, blocked[0])
				blocked = blocked[1:]
			}
			switch w.o {
			case OK:
				if w.count {
					res.enrolled++
				}
				w.try = 0
				push(el, evAcquire, e.worker)
			case Throttled:
				wait := max(w.ra, time.Second/2)
				if v.Episode {
					wait = 0
				}
				push(el+wait, evAcquire, e.worker)
			case Down:
				if v.Outage {
					push(el, evAcquire, e.worker)
					continue
				}
				if w.try >= retries {
					res.failed++
					w.try = 0
					push(el, evAcquire, e.worker)
					continue
				}
				d := time.Duration(500<<min(w.try, 10)) * time.Millisecond
				d = min(d, 30*time.Second)
				d = d/2 + time.Duration(rnd.Int64N(int64(d/2)+1))
				w.try++
				push(el+d, evAcquire, e.worker)
			}
		}
	}
	res.seconds = (sp.duration - sp.from).Seconds()
	res.sustained = g.SustainedQuota()
	res.cuts = g.ep.cuts
	_, res.learned = g.Rates()
	return res
}

func uniform(lo, hi time.Duration) func(*rand.Rand) time.Duration {
	return func(r *rand.Rand) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
}

func constQuota(q float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return q }
}
