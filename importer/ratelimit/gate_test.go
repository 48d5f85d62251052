package ratelimit

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// fakeClock is a settable clock for gates under test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time        { return c.t }
func (c *fakeClock) add(d time.Duration)   { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock             { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) gate(cfg Config) *Gate { cfg.Now = c.now; return New(cfg) }

// drive sends at the gate's pace for d, each answer coming back after rtt
// with outcome o, and returns how many went.
func drive(g *Gate, c *fakeClock, d, rtt time.Duration, o func(i int) Outcome) int {
	type inflight struct {
		sl Slot
		at time.Time
		o  Outcome
	}
	var fl []inflight
	n := 0
	end := c.t.Add(d)
	step := time.Millisecond
	for c.t.Before(end) {
		for len(fl) > 0 && !fl[0].at.After(c.t) {
			ra := time.Duration(0)
			if fl[0].o == Throttled {
				ra = time.Second
			}
			g.Done(fl[0].sl, fl[0].o, ra)
			fl = fl[1:]
		}
		sl, ok := g.tryAcquire(c.t)
		if !ok {
			c.add(step)
			continue
		}
		st := g.reserve(c.t, &sl)
		if st.paused || st.err != nil {
			g.Release(sl)
			c.add(step)
			continue
		}
		for st.delay > 0 {
			c.add(st.delay)
			var stale bool
			if st.delay, stale = g.admit(c.t, st.t, &sl); stale {
				break
			}
		}
		if sl.sent.IsZero() {
			g.Release(sl)
			continue
		}
		fl = append(fl, inflight{sl, c.t.Add(rtt), o(n)})
		n++
	}
	return n
}

func always(o Outcome) func(int) Outcome { return func(int) Outcome { return o } }

func TestAdaptiveGateSeedAndDefaults(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Auto: true})
	if l, learned := g.Rates(); l != defaultStartRate || learned != 0 {
		t.Errorf("default start: %v, learned %v", l, learned)
	}
	g = c.gate(Config{Auto: true, Learned: 40})
	if l, learned := g.Rates(); l != approachShare*40 || learned != 40 {
		t.Errorf("seeded with 40: limit %v, learned %v", l, learned)
	}
	g = c.gate(Config{Auto: true, Learned: 400, Max: 50})
	if l, _ := g.Rates(); l != 50 {
		t.Errorf("seeded above Max: limit %v", l)
	}
	g = c.gate(Config{Auto: true, Start: 0.01})
	if l, _ := g.Rates(); l != minRate {
		t.Errorf("start below the floor: limit %v", l)
	}
	// Reaches 50/s from 10/s in a few seconds when nothing refuses.
	g = c.gate(Config{Auto: true, Workers: 16})
	drive(g, c, 6*time.Second, 20*time.Millisecond, always(OK))
	if l, _ := g.Rates(); l != defaultMaxRate {
		t.Errorf("limit after 6s = %v, want %v", l, defaultMaxRate)
	}
	// A fixed gate stays fixed.
	g = c.gate(Config{Fixed: 7, Auto: true, Workers: 4})
	drive(g, c, 3*time.Second, 20*time.Millisecond, always(OK))
	if l, _ := g.Rates(); l != 7 {
		t.Errorf("fixed gate at %v", l)
	}
}

func TestGateWaitCancel(t *testing.T) {
	g := New(Config{Fixed: 0.5, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	sl, err := g.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sl, err = g.Send(ctx, sl); err != nil { // the burst
		t.Fatal(err)
	}
	g.Done(sl, OK, 0)
	done := make(chan error, 1)
	go func() {
		sl, err := g.Acquire(ctx)
		if err == nil {
			_, err = g.Send(ctx, sl)
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("send = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("send did not return after cancel")
	}
}

var _ = math.Abs

// sendOne takes a slot and sends one request on g, moving the clock
// through any wait.
func sendOne(t *testing.T, g *Gate, c *fakeClock) Slot {
	t.Helper()
	for range 100000 {
		sl, ok := g.tryAcquire(c.t)
		if !ok {
			t.Fatalf("window full at %v", c.t)
		}
		st := g.reserve(c.t, &sl)
		if st.err != nil {
			t.Fatal(st.err)
		}
		for !st.paused && st.delay > 0 {
			c.add(st.delay)
			var stale bool
			if st.delay, stale = g.admit(c.t, st.t, &sl); stale {
				st.paused, st.delay = true, 0
			}
		}
		if !sl.sent.IsZero() {
			return sl
		}
		g.Release(sl)
		c.add(max(st.delay, time.Millisecond))
	}
	t.Fatal("never sent")
	return Slot{}
}

// TestGateNoiseIsNotAQuota: sparse 429s at random (5 %) neither pause the
// pool nor cut the rate, however long they last.
func TestGateNoiseIsNotAQuota(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Auto: true, Workers: 64})
	for i := range 3000 {
		sl := sendOne(t, g, c)
		c.add(5 * time.Millisecond)
		o := OK
		if i%20 == 7 {
			o = Throttled
		}
		if v := g.Done(sl, o, time.Second); v.Episode {
			t.Fatalf("answer %d: a sparse 429 began an episode", i)
		}
	}
	if g.ep.cuts != 0 || !g.pauseUntil.IsZero() {
		t.Errorf("%d cuts, paused until %v", g.ep.cuts, g.pauseUntil)
	}
	if l, learned := g.Rates(); l != defaultMaxRate || learned != 0 {
		t.Errorf("limit %v, learned %v after noise; want Max and nothing learned", l, learned)
	}
}

// TestGateEpisodeCutsOnce: a share of 429s well above the threshold is an
// episode: the pool pauses for the Retry-After, the limit is cut once to
// gateBeta of the rate measured; the 429s of requests sent before the cut
// do not cut again (they measure the quota again, by send time); growth
// waits out the hold.
func TestGateEpisodeCutsOnce(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Auto: true, Start: 40, Max: 50, Workers: 64})
	type flight struct {
		sl  Slot
		due time.Time
	}
	var fl []flight
	answered := 0
	answer := func(f flight) {
		o := OK
		if answered >= 200 {
			o = Throttled // the quota: every answer from the 200th on
		}
		answered++
		g.Done(f.sl, o, 2*time.Second)
	}
	for g.ep.cuts == 0 {
		if answered > 1000 {
			t.Fatal("no episode")
		}
		fl = append(fl, flight{sendOne(t, g, c), c.t.Add(100 * time.Millisecond)})
		for len(fl) > 0 && !fl[0].due.After(c.t) && g.ep.cuts == 0 {
			answer(fl[0])
			fl = fl[1:]
		}
	}
	if answered > 200+20 {
		t.Errorf("the episode came %d answers after the quota, want a few", answered-200)
	}
	l, learned := g.Rates()
	if learned <= 0 || math.Abs(l-gateBeta*learned) > 1e-9 {
		t.Errorf("limit %v, learned %v: want a cut to %v × learned", l, learned, gateBeta)
	}
	if d := g.pauseUntil.Sub(c.t); d <= 0 || d > 2*time.Second {
		t.Errorf("pause left %v, want up to the Retry-After of 2s", d)
	}
	if st := g.reserve(c.t, &Slot{}); !st.paused {
		t.Error("a request may go during the episode's pause")
	}
	// Every request sent before the cut comes back 429: no new episode.
	if len(fl) < 3 {
		t.Fatalf("only %d requests in flight at the cut", len(fl))
	}
	for _, f := range fl {
		c.t = later(c.t, f.due)
		answer(f)
	}
	if g.ep.cuts != 1 {
		t.Errorf("429s of requests sent before the cut made %d episodes", g.ep.cuts)
	}
	// Once they are all in, the episode's quota is measured again by send
	// time, and the limit follows it once, still gateBeta of it.
	if g.sends.measuring {
		t.Error("the episode's requests are all answered, and its quota is not measured again")
	}
	l, learned = g.Rates()
	if learned <= 0 || math.Abs(l-gateBeta*learned) > 1e-9 {
		t.Errorf("after the measure by send time: limit %v, learned %v: want %v × learned", l, learned, gateBeta)
	}
	// No growth during the hold; growth after it.
	c.t = g.holdTill.Add(-10 * time.Millisecond)
	g.Done(sendOne(t, g, c), OK, 0)
	if l2, _ := g.Rates(); l2 != l {
		t.Errorf("the limit grew to %v during the hold", l2)
	}
	c.add(time.Second)
	end := c.t.Add(3 * time.Second)
	for c.t.Before(end) {
		g.Done(sendOne(t, g, c), OK, 0)
	}
	if l2, _ := g.Rates(); l2 <= l {
		t.Errorf("the limit did not grow after the hold: %v", l2)
	}
}

// TestGateFixedRateEpisode: a fixed --rate is cut once per episode (not
// once per 429) and climbs back to the operator's value.
func TestGateFixedRateEpisode(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Fixed: 40, Workers: 64})
	var inflight []Slot
	for range 30 {
		inflight = append(inflight, sendOne(t, g, c))
	}
	for _, sl := range inflight {
		g.Done(sl, Throttled, time.Second)
	}
	if g.ep.cuts != 1 {
		t.Fatalf("a burst of 429s made %d episodes, want 1", g.ep.cuts)
	}
	if l, _ := g.Rates(); l < 40.0/8 || l >= 40 {
		t.Errorf("limit after the episode %v, want one cut from 40 (not below 5)", l)
	}
	c.t = g.holdTill
	for range 400 {
		g.Done(sendOne(t, g, c), OK, 0)
	}
	if l, _ := g.Rates(); l != 40 {
		t.Errorf("limit %v after climbing back, want the operator's 40", l)
	}
}

// TestGateCutAtMostHalves: an episode that measures a rate far below the
// learned quota (a handful of answers right after a cut, with noise) at
// most halves it; the first episode, with nothing learned, takes the rate
// it measured.
func TestGateCutAtMostHalves(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Auto: true, Max: 250, Workers: 256, AutoWindow: true})
	g.cut(c.t, 3, time.Second)
	if _, learned := g.Rates(); learned != 3 {
		t.Fatalf("first episode: learned %v, want the 3 it measured", learned)
	}
	c = newFakeClock()
	g = c.gate(Config{Auto: true, Max: 250, Workers: 256, AutoWindow: true, Learned: 92})
	g.cut(c.t, 3, time.Second)
	l, learned := g.Rates()
	if learned != 46 || math.Abs(l-gateBeta*46) > 1e-9 {
		t.Errorf("an episode measuring 3/s with 92/s learned: learned %v, limit %v; want 46 and %v", learned, l, gateBeta*46)
	}
	// A fall of the quota to a half or more is taken whole.
	g.cut(c.t.Add(10*time.Second), 30, time.Second)
	if _, learned := g.Rates(); learned != 30 {
		t.Errorf("an episode measuring 30/s with 46/s learned: learned %v, want 30", learned)
	}
}

// TestGateSustainedQuota: a quota is remembered only after several
// episodes at a similar rate.
func TestGateSustainedQuota(t *testing.T) {
	var e episodes
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		rate float64
		want bool
	}{{30, false}, {29, false}, {31, true}, {15, false}, {16, false}, {15.5, true}} {
		e.cutAt(now, c.rate)
		if got := e.sustained() > 0; got != c.want {
			t.Errorf("after episode %d at %v: sustained %v, want %v", i, c.rate, e.sustained(), c.want)
		}
	}
	if s := e.sustained(); math.Abs(s-15.5) > 0.01 {
		t.Errorf("sustained %v, want the mean 15.5", s)
	}
	// Only the adaptive rate learns; a run without episodes remembers nothing.
	c := newFakeClock()
	if q := c.gate(Config{Auto: true}).SustainedQuota(); q != 0 {
		t.Errorf("sustained %v without an episode", q)
	}
}

// TestGateWindow: with automatic workers the window is the rate times the
// recent answer time with headroom, between 1 and the pool; a fixed pool
// is its own window.
func TestGateWindow(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Fixed: 20, Workers: 256, AutoWindow: true})
	if want := int(math.Ceil(windowHeadroom*20*guessRTT.Seconds())) + windowSlack; g.win.size != want {
		t.Errorf("first window %d, want %d (the guessed answer time)", g.win.size, want)
	}
	// Answers of 2s: Little's law says 40 in flight, 62 with headroom.
	for range 200 {
		sl := sendOne(t, g, c)
		c.add(2 * time.Second)
		g.Done(sl, OK, 0)
		c.add(-2*time.Second + 50*time.Millisecond)
	}
	if want := int(math.Ceil(windowHeadroom*20*2)) + windowSlack; g.win.size < want-2 || g.win.size > want+2 {
		t.Errorf("window %d at 20/s and 2s answers, want about %d", g.win.size, want)
	}
	// Never above the pool.
	g = c.gate(Config{Fixed: 1000, Workers: 16, AutoWindow: true})
	if g.win.size != 16 {
		t.Errorf("window %d, want the pool of 16", g.win.size)
	}
	// A fixed pool.
	g = c.gate(Config{Fixed: 1, Workers: 7})
	if g.win.size != 7 {
		t.Errorf("fixed window %d, want 7", g.win.size)
	}
	// Without a rate, automatic workers use the pool.
	g = c.gate(Config{Workers: 100, AutoWindow: true})
	if g.win.size != 100 {
		t.Errorf("window without a rate %d, want 100", g.win.size)
	}
}

// TestGateWindowBlocks: a full window makes acquire wait until a slot frees.
func TestGateWindowBlocks(t *testing.T) {
	g := New(Config{Workers: 2})
	ctx := context.Background()
	a, _ := g.Acquire(ctx)
	b, _ := g.Acquire(ctx)
	got := make(chan Slot, 1)
	go func() {
		sl, err := g.Acquire(ctx)
		if err == nil {
			got <- sl
		}
	}()
	select {
	case <-got:
		t.Fatal("acquire went through a full window")
	case <-time.After(30 * time.Millisecond):
	}
	g.Release(a)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("acquire still waits after a slot freed")
	}
	g.Release(b)
	if c := g.Control(); c.Window != 2 || c.InFlight != 0 {
		t.Errorf("control %+v", c)
	}
}

// TestGateBreaker: when every answer for 3s failed, the pool stops and
// probes with one request at a time, 1s, 2s, 4s... up to 30s apart; rows
// are told it is an outage; the first good answer closes it; past the
// outage limit send fails with an *OutageError naming when it began.
func TestGateBreaker(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Workers: 8, OutageLimit: 5 * time.Minute})
	start := c.t
	var v Verdict
	for !v.Outage && c.t.Sub(start) < 4*time.Second {
		sl := sendOne(t, g, c)
		c.add(100 * time.Millisecond)
		v = g.Done(sl, Down, 0)
	}
	if !v.Outage || !g.br.open {
		t.Fatal("the breaker did not open after 3s of failures")
	}
	if ctl := g.Control(); ctl.Limiter != LimitOutage || !ctl.DownSince.Equal(start.Add(100*time.Millisecond)) {
		t.Errorf("control %+v, want the outage since the first failure", ctl)
	}
	// Probes, one at a time, the interval doubling up to 30s.
	var probes []time.Duration
	opened := c.t
	for c.t.Sub(opened) < 4*time.Minute {
		sl, _ := g.tryAcquire(c.t)
		st := g.reserve(c.t, &sl)
		if st.err != nil {
			t.Fatal(st.err)
		}
		if st.paused {
			g.Release(sl)
			c.add(st.delay)
			continue
		}
		if !sl.probe {
			t.Fatal("a request went during the outage that is not the probe")
		}
		probes = append(probes, c.t.Sub(opened))
		// While the probe is in flight, nobody else goes.
		other, _ := g.tryAcquire(c.t)
		if st := g.reserve(c.t, &other); !st.paused {
			t.Fatal("a second request went while the probe was in flight")
		}
		g.Release(other)
		c.add(50 * time.Millisecond)
		g.Done(sl, Down, 0)
	}
	want := []time.Duration{1, 3, 7, 15, 31, 61, 91, 121, 151, 181, 211}
	if len(probes) != len(want) {
		t.Fatalf("probes at %v, want %d of them", probes, len(want))
	}
	for i, p := range probes {
		if d := p - want[i]*time.Second; d < 0 || d > 300*time.Millisecond {
			t.Errorf("probe %d at %v, want about %ds", i, p, want[i])
		}
	}
	// Past the outage limit: an *OutageError.
	c.t = start.Add(5*time.Minute + time.Second)
	sl, _ := g.tryAcquire(c.t)
	st := g.reserve(c.t, &sl)
	var oe *OutageError
	if !errors.As(st.err, &oe) || !oe.Since.Equal(start.Add(100*time.Millisecond)) {
		t.Fatalf("after the limit: %+v", st)
	}
	g.Release(sl)
	// A good answer closes it.
	g.br.limit = 0
	for {
		sl, _ := g.tryAcquire(c.t)
		st := g.reserve(c.t, &sl)
		if !st.paused {
			g.Done(sl, OK, 0)
			break
		}
		g.Release(sl)
		c.add(st.delay)
	}
	if g.br.open {
		t.Error("a good answer did not close the breaker")
	}
	if v := g.Done(sendOne(t, g, c), Down, 0); v.Outage {
		t.Error("one failure after the outage reopened the breaker")
	}
}

// TestGateBreakerNotOnNoise: 5xx among good answers never open it.
func TestGateBreakerNotOnNoise(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Workers: 8})
	for i := range 2000 {
		sl := sendOne(t, g, c)
		c.add(10 * time.Millisecond)
		o := OK
		if i%10 != 0 {
			o = Down // 90 % failures, but some answers get through
		}
		if g.Done(sl, o, 0).Outage {
			t.Fatalf("the breaker opened at answer %d with answers getting through", i)
		}
	}
}

// stepTrace counts the gate's soft steps ("step": probes stepped the limit
// back; "lower": the learned quota was lowered) while it is set.
func stepTrace(t *testing.T) map[string]int {
	steps := map[string]int{}
	gateTrace = func(_ time.Time, what string, _, _ float64) { steps[what]++ }
	t.Cleanup(func() { gateTrace = nil })
	return steps
}

// sendAt sends n requests at a limit of rate, in turn, and returns their slots.
func sendAt(t *testing.T, g *Gate, c *fakeClock, rate float64, n int) []Slot {
	t.Helper()
	g.mu.Lock()
	g.setLimit(rate)
	g.mu.Unlock()
	var sls []Slot
	for range n {
		sls = append(sls, sendOne(t, g, c))
	}
	return sls
}

// answerAll answers the requests of sls a millisecond apart, every
// throttleEvery-th a 429 (0: none).
func answerAll(g *Gate, c *fakeClock, sls []Slot, throttleEvery int) {
	for i, sl := range sls {
		c.add(time.Millisecond)
		o := OK
		if throttleEvery > 0 && i%throttleEvery == throttleEvery-1 {
			o = Throttled
		}
		g.Done(sl, o, time.Second)
	}
}

// TestGateProbeStepsOnce: probes above the learned quota that meet 429s
// step the limit back once; the answers still coming to probes sent before
// that step (at the old limit) do not step it back again, and new probes
// that meet 429s do.
func TestGateProbeStepsOnce(t *testing.T) {
	c := newFakeClock()
	g := c.gate(Config{Auto: true, Max: 250, Workers: 1024, Learned: 100})
	steps := stepTrace(t)
	answerAll(g, c, sendAt(t, g, c, 98, 100), 0) // no 429 at the quota
	probes := sendAt(t, g, c, 110, 200)
	answerAll(g, c, probes[:100], 10)
	if steps["step"] != 1 {
		t.Fatalf("%d steps after probes met 10 %% of 429s, want 1", steps["step"])
	}
	stepped, _ := g.Rates()
	if stepped >= 110 || stepped < gateBeta*100 {
		t.Errorf("the limit stepped back from 110 to %.1f", stepped)
	}
	// The pool goes on at the stepped limit, its answers good, until the
	// hold is over; then the rest of the probes sent before the step come
	// back, with as many 429s.
	for !c.t.After(g.holdTill) {
		g.Done(sendOne(t, g, c), OK, 0)
	}
	answerAll(g, c, probes[100:], 10)
	if steps["step"] != 1 {
		t.Errorf("the answers to probes sent before the step stepped it back again: %d steps", steps["step"])
	}
	// Probes sent after the step still count.
	answerAll(g, c, sendAt(t, g, c, 110, 100), 10)
	if steps["step"] != 2 {
		t.Errorf("new probes that met 10 %% of 429s made %d steps in all, want 2", steps["step"])
	}
}

// TestGateLowersAQuotaLearnedHigh: requests sent just under the learned
// quota that meet more 429s than those well below it (the noise) say the
// quota was learned a little high: it is lowered to the rate they were
// accepted at, and the limit comes under it. The same share of 429s below
// and near it (noise) changes nothing, nor does a noise not known yet.
func TestGateLowersAQuotaLearnedHigh(t *testing.T) {
	for _, c := range []struct {
		name              string
		below, belowEvery int // answers sent at 90/s, and every how many a 429
		nearEvery         int // of 200 answers sent at 99/s
		wantLearned       float64
		lowered           bool
	}{
		{"the quota is under the learned one", 100, 0, 20, 95, true},
		{"noise alike below and near", 100, 20, 20, 100, false},
		{"the noise is not known yet", 20, 0, 20, 100, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			g := clk.gate(Config{Auto: true, Max: 250, Workers: 1024, Learned: 100})
			steps := stepTrace(t)
			answerAll(g, clk, sendAt(t, g, clk, 90, c.below), c.belowEvery)
			answerAll(g, clk, sendAt(t, g, clk, 99, 200), c.nearEvery)
			l, learned := g.Rates()
			// Lowered as soon as the excess is certain: about 5 % under
			// the 99/s they were sent at.
			if math.Abs(learned-c.wantLearned) > 0.02*c.wantLearned {
				t.Errorf("learned %.2f, want %.2f", learned, c.wantLearned)
			}
			if !c.lowered {
				if steps["lower"] != 0 {
					t.Errorf("lowered the learned quota %d times", steps["lower"])
				}
				return
			}
			if steps["lower"] != 1 || math.Abs(l-approachShare*learned) > 1e-9 {
				t.Errorf("lowered %d times, limit %.2f; want once, and %v of it", steps["lower"], l, approachShare)
			}
		})
	}
}
