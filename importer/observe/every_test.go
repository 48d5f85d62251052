package observe

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestEvery: calls come at the interval until stop, and none after it.
func TestEveryStops(t *testing.T) {
	var n atomic.Int32
	stop := every(5*time.Millisecond, func() { n.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // a second stop is harmless
	got := n.Load()
	if got < 3 {
		t.Fatalf("%d calls in 5 s at a 5 ms interval", got)
	}
	time.Sleep(20 * time.Millisecond)
	if n.Load() != got {
		t.Errorf("calls went on after stop: %d, then %d", got, n.Load())
	}
}

// TestPeriodic: end without a start reports false, a second start does not
// start a second loop, and after end no call comes.
func TestPeriodic(t *testing.T) {
	var p periodic
	if p.end() {
		t.Error("end without start reported running")
	}
	var first, second atomic.Int32
	p.start(5*time.Millisecond, func() { first.Add(1) })
	p.start(5*time.Millisecond, func() { second.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for first.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !p.end() {
		t.Error("end after start reported not running")
	}
	if p.end() {
		t.Error("a second end reported running")
	}
	n := first.Load()
	if n < 2 || second.Load() != 0 {
		t.Fatalf("calls: first %d, second %d; want the first loop only", n, second.Load())
	}
	time.Sleep(20 * time.Millisecond)
	if first.Load() != n {
		t.Errorf("calls went on after end: %d, then %d", n, first.Load())
	}
}
