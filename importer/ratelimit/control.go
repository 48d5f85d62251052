package ratelimit

import "time"

// Limiter names what holds a run's speed back, for the progress line's
// hint; LimitNone when nothing in particular does.
type Limiter string

// What can hold a run back.
const (
	LimitNone     Limiter = ""
	LimitQuota    Limiter = "quota"        // the service's quota: episodes of 429s
	LimitMaxRate  Limiter = "max-rate"     // the adaptive rate is at --max-rate
	LimitRate     Limiter = "rate"         // the fixed --rate
	LimitWorkers  Limiter = "workers"      // a fixed --workers, or --max-workers, is full
	LimitManifest Limiter = "manifest"     // rows arrive slower than they could be sent
	LimitPhotos   Limiter = "photo source" // reading or fetching photos is slower than sending
	LimitOutage   Limiter = "outage"       // the service does not answer: the pool waits and probes
)

// Control is the state of a run's rate and concurrency control, as the
// progress line, the summary, the live file, the metrics and the JSON log
// all show it.
type Control struct {
	// Rate is the request rate limit in force, per second (0: none).
	Rate float64
	// LearnedRate is the quota the adaptive rate has found, per second (0: none yet).
	LearnedRate float64
	// InFlight is the number of requests sent and not yet answered.
	InFlight int64
	// Window is how many requests may be in flight at once now.
	Window int
	// Limiter is what holds the run back, when something in particular does.
	Limiter Limiter
	// DownSince is when the service stopped answering, while an outage
	// holds the pool (zero otherwise).
	DownSince time.Time
}
