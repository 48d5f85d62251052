package observe

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestEvery: calls come at the interval until stop, and none after it.
func TestEvery(t *testing.T) {
	var n atomic.Int32
	stop := Every(5*time.Millisecond, func() { n.Add(1) })
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
