package ratelimit

import (
	"context"
	"math"
	"time"
)

// window is the gate's concurrency window: how many rows may hold a slot
// (from loading the photo to the answer) at once. With automatic workers
// it follows Little's law: the rate in force times the recent time a slot
// is held (loading the photo, then the answer), with headroom, between 1
// and the pool; with a fixed --workers it is the pool. The caller of every
// method holds the gate's mutex.
type window struct {
	auto bool
	max  int // the pool: --workers, or --max-workers when auto
	size int // the slots allowed now

	held     int // slots taken
	inFlight int // requests sent and not answered

	// wake is closed (and cleared) when a slot frees or the window grows,
	// for the requests waiting for one; nil while none waits.
	wake   chan struct{}
	fullAt time.Time // when a request last found the window full

	// rtt and prep are moving averages, in seconds, of the answer time
	// (send to answer) and of the time from a slot to sending (the photo);
	// 0 before the first sample.
	rtt, prep float64
}

const (
	windowHeadroom = 1.5 // the window holds this many times what the rate needs
	windowSlack    = 2   // and this many slots more
	guessRTT       = time.Second
	ewmaWeight     = 1.0 / 16
)

// Acquire takes a slot of the window, waiting for one while it is full, or
// until ctx ends. It never blocks, spawns or arms a timer when a slot is free.
func (g *Gate) Acquire(ctx context.Context) (Slot, error) {
	for {
		g.mu.Lock()
		now := g.now()
		if g.win.held < g.win.size {
			g.win.held++
			if g.win.held == g.win.size {
				g.win.fullAt = now
			}
			g.mu.Unlock()
			return Slot{got: now}, nil
		}
		g.win.fullAt = now
		if g.win.wake == nil {
			g.win.wake = make(chan struct{})
		}
		wake := g.win.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Slot{}, ctx.Err()
		}
	}
}

// tryAcquire takes a slot at now if one is free (the simulator's acquire).
func (g *Gate) tryAcquire(now time.Time) (Slot, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.win.held >= g.win.size {
		g.win.fullAt = now
		return Slot{}, false
	}
	g.win.held++
	if g.win.held == g.win.size {
		g.win.fullAt = now
	}
	return Slot{got: now}, true
}

// sent counts a request that goes.
func (w *window) sent() { w.inFlight++ }

// prepared counts the time d a row took from its slot to asking to send.
func (w *window) prepared(d time.Duration) { w.prep = ewma(w.prep, d.Seconds()) }

// free gives back the slot of sl at now, counting its answer time if it
// was sent, and wakes the requests waiting for a slot.
func (w *window) free(now time.Time, sl Slot) {
	w.held = max(w.held-1, 0)
	if !sl.sent.IsZero() {
		w.inFlight = max(w.inFlight-1, 0)
		w.rtt = ewma(w.rtt, now.Sub(sl.sent).Seconds())
	}
	w.signal()
}

// signal wakes the requests waiting for a slot, if a slot is free.
func (w *window) signal() {
	if w.wake != nil && w.held < w.size {
		close(w.wake)
		w.wake = nil
	}
}

// answerTime is the recent time a request takes, a guess before the first
// answer.
func (w *window) answerTime() time.Duration {
	if w.rtt <= 0 {
		return guessRTT
	}
	return time.Duration(w.rtt * float64(time.Second))
}

// preparing counts the slots taken by rows not yet sent (loading their
// photo, or waiting for their turn).
func (w *window) preparing() int { return max(w.held-w.inFlight, 0) }

// resize sets an automatic window from the rate in force: Little's law.
// The caller holds g.mu.
func (g *Gate) resize() {
	w := &g.win
	if !w.auto {
		return
	}
	switch {
	case g.mode == gateOpen:
		w.size = w.max
	default:
		hold := w.answerTime().Seconds() + w.prep
		need := windowHeadroom*g.limit*hold + windowSlack
		w.size = int(min(max(math.Ceil(need), 1), float64(w.max)))
	}
	w.signal()
}

// ewma moves the average avg toward the sample x (avg 0: none yet).
func ewma(avg, x float64) float64 {
	if avg <= 0 {
		return x
	}
	return avg + ewmaWeight*(x-avg)
}
