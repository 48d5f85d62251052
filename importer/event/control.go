package event

import "bulkenroll/importer/ratelimit"

// Control is the state of a run's rate and concurrency control, as the gate
// reports it (ratelimit.Control) and every display shows it.
type Control = ratelimit.Control

// Limiter names what holds a run's speed back (ratelimit.Limiter).
type Limiter = ratelimit.Limiter

// What can hold a run back (see ratelimit).
const (
	LimitNone     = ratelimit.LimitNone
	LimitQuota    = ratelimit.LimitQuota
	LimitMaxRate  = ratelimit.LimitMaxRate
	LimitRate     = ratelimit.LimitRate
	LimitWorkers  = ratelimit.LimitWorkers
	LimitManifest = ratelimit.LimitManifest
	LimitPhotos   = ratelimit.LimitPhotos
	LimitOutage   = ratelimit.LimitOutage
)
