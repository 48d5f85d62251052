package importer

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// fakeClock is a settable clock for gates under test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time            { return c.t }
func (c *fakeClock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                 { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) gate(cfg gateConfig) *gate { cfg.Now = c.now; return newGateWith(cfg) }

// sendNow takes a slot and sends at once on g, failing if it must wait.
func sendNow(t *testing.T, g *gate, c *fakeClock) slot {
	t.Helper()
	sl, ok := g.tryAcquire(c.t)
	if !ok {
		t.Fatalf("no slot at %v", c.t)
	}
	if st := g.reserve(c.t, &sl); st.paused || st.delay > 0 || st.err != nil {
		t.Fatalf("send waits: %+v", st)
	}
	return sl
}

// drive sends at the gate's pace for d, each answer coming back after rtt
// with outcome o, and returns how many went.
func drive(g *gate, c *fakeClock, d, rtt time.Duration, o func(i int) outcome) int {
	type inflight struct {
		sl slot
		at time.Time
		o  outcome
	}
	var fl []inflight
	n := 0
	end := c.t.Add(d)
	step := time.Millisecond
	for c.t.Before(end) {
		for len(fl) > 0 && !fl[0].at.After(c.t) {
			ra := time.Duration(0)
			if fl[0].o == outThrottled {
				ra = time.Second
			}
			g.done(fl[0].sl, fl[0].o, ra)
			fl = fl[1:]
		}
		sl, ok := g.tryAcquire(c.t)
		if !ok {
			c.add(step)
			continue
		}
		st := g.reserve(c.t, &sl)
		if st.paused || st.err != nil {
			g.release(sl)
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
			g.release(sl)
			continue
		}
		fl = append(fl, inflight{sl, c.t.Add(rtt), o(n)})
		n++
	}
	return n
}

func always(o outcome) func(int) outcome { return func(int) outcome { return o } }

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
	drive(g, c, 6*time.Second, 20*time.Millisecond, always(outOK))
	if l, _ := g.rates(); l != defaultMaxRate {
		t.Errorf("limit after 6s = %v, want %v", l, defaultMaxRate)
	}
	// A fixed gate stays fixed.
	g = c.gate(gateConfig{Fixed: 7, Auto: true, Workers: 4})
	drive(g, c, 3*time.Second, 20*time.Millisecond, always(outOK))
	if l, _ := g.rates(); l != 7 {
		t.Errorf("fixed gate at %v", l)
	}
}

func TestGateWaitCancel(t *testing.T) {
	g := newGateWith(gateConfig{Fixed: 0.5, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	sl, err := g.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sl, err = g.send(ctx, sl); err != nil { // the burst
		t.Fatal(err)
	}
	g.done(sl, outOK, 0)
	done := make(chan error, 1)
	go func() {
		sl, err := g.acquire(ctx)
		if err == nil {
			_, err = g.send(ctx, sl)
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
