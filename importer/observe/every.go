package observe

import (
	"sync"
	"time"
)

// every calls fn every interval, in a goroutine of its own, until the
// returned stop is called; stop waits for a call in progress to end and may
// be called more than once. Observers that report periodically use it.
func every(interval time.Duration, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// periodic calls a function every interval from start until end, for the
// observers that report on a schedule: a second start does nothing, and end
// may come without a start, or more than once.
type periodic struct {
	mu   sync.Mutex
	stop func() // nil when not running
}

// start calls fn every interval, unless the calls have started already.
func (p *periodic) start(interval time.Duration, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		p.stop = every(interval, fn)
	}
}

// end stops the calls, waiting for one in progress, and reports whether
// they were running.
func (p *periodic) end() bool {
	p.mu.Lock()
	stop := p.stop
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return false
	}
	stop()
	return true
}
