package observe

import (
	"sync"
	"time"
)

// Every calls fn every interval, in a goroutine of its own, until the
// returned stop is called; stop waits for a call in progress to end and may
// be called more than once. Observers that report periodically use it.
func Every(interval time.Duration, fn func()) (stop func()) {
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
