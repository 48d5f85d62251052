package importer

import (
	"context"
	"errors"
	"time"
)

// WithGrace returns the contexts of a run that may end early. run ends when
// parent does (a signal) or when stop is called with a cause (the run stops
// itself); req carries the requests in flight and outlives run by grace
// after a signal, or by stopGrace after a stop, so that an answer on its
// way is not lost. release frees them; call it when the run is over.
func WithGrace(parent context.Context, grace, stopGrace time.Duration) (run context.Context, stop context.CancelCauseFunc, req context.Context, release func()) {
	run, stop = context.WithCancelCause(parent)
	req, cancelReq := context.WithCancel(context.WithoutCancel(parent))
	unhook := context.AfterFunc(run, func() {
		g := grace
		if parent.Err() == nil {
			g = stopGrace // stopped by the run, not interrupted
		}
		t := time.AfterFunc(g, cancelReq)
		<-req.Done()
		t.Stop()
	})
	release = func() {
		unhook()
		cancelReq()
		stop(nil)
	}
	return run, stop, req, release
}

// StopCause says why a run's context (WithGrace's run) ended: nil if it
// did not, ErrInterrupted for a signal, or the cause the run stopped with.
func StopCause(run context.Context) error {
	if run.Err() == nil {
		return nil
	}
	c := context.Cause(run)
	if errors.Is(c, context.Canceled) || errors.Is(c, ErrInterrupted) {
		return ErrInterrupted
	}
	return c
}
