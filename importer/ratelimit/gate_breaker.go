package ratelimit

import (
	"fmt"
	"time"
)

// breaker is the gate's outage circuit breaker. When every answer for
// outageAfter was a connection error, a time-out or a 5xx, it opens: the
// pool stops sending, and one request at a time probes the service, the
// interval doubling from probeFirst to probeMax. The first good answer (a
// 429 too: the service answers) closes it. Rows do not fail while it is
// open; after limit the run stops with an *OutageError. The caller of
// every method holds the gate's mutex.
type breaker struct {
	limit time.Duration // 0: no limit

	open      bool
	firstDown time.Time // the first failed answer since the last good one (zero: none)
	since     time.Time // while open: when the service stopped answering
	nextProbe time.Time
	interval  time.Duration
	probing   bool // the probe is in flight
}

const (
	outageAfter = 3 * time.Second
	probeFirst  = time.Second
	probeMax    = 30 * time.Second
	// outageNap bounds a waiting request's sleep while the breaker is open.
	outageNap = 250 * time.Millisecond
)

// OutageError stops a run whose service did not answer for the outage
// limit: the rows not done stay as they were (pending), for the next run.
type OutageError struct {
	// Since is when the service stopped answering.
	Since time.Time
	// Limit is --outage-limit.
	Limit time.Duration
}

func (e *OutageError) Error() string {
	return fmt.Sprintf("stopped: Smile ID has not answered since %s (connection errors, time-outs or 5xx for over --outage-limit %s); the rows not done stay pending for the next run",
		e.Since.UTC().Format("2006-01-02 15:04:05 UTC"), e.Limit)
}

// good records a good answer at now: it closes the breaker.
func (b *breaker) good(time.Time) {
	b.firstDown = time.Time{}
	if b.open {
		b.open, b.probing = false, false
		b.since = time.Time{}
	}
}

// down records a failed answer at now (probe: the breaker's probe), and
// reports whether it opened the breaker.
func (b *breaker) down(now time.Time, probe bool) (opened bool) {
	if b.firstDown.IsZero() {
		b.firstDown = now
	}
	if b.open || now.Sub(b.firstDown) < outageAfter {
		return false
	}
	b.open = true
	b.since = b.firstDown
	b.interval = probeFirst
	b.nextProbe = now.Add(b.interval)
	b.probing = false
	return true
}

// admit decides at now, while the breaker is open, whether a request may
// go as the probe; if not, how long it waits before asking again. Past the
// outage limit it returns an *OutageError.
func (b *breaker) admit(now time.Time) (wait time.Duration, probe bool, err error) {
	if b.limit > 0 && now.Sub(b.since) >= b.limit {
		return 0, false, &OutageError{Since: b.since, Limit: b.limit}
	}
	if b.probing {
		return outageNap, false, nil
	}
	if now.Before(b.nextProbe) {
		return min(b.nextProbe.Sub(now), outageNap), false, nil
	}
	b.probing = true
	b.interval = min(2*b.interval, probeMax)
	b.nextProbe = now.Add(b.interval)
	return 0, true, nil
}
