package importer

import "bulkenroll/importer/event"

// Temporary, until the gate moves to importer/ratelimit: the gate's names
// for the control's state.
type (
	Control = event.Control
	Limiter = event.Limiter
)

const (
	LimitNone     = event.LimitNone
	LimitQuota    = event.LimitQuota
	LimitMaxRate  = event.LimitMaxRate
	LimitRate     = event.LimitRate
	LimitWorkers  = event.LimitWorkers
	LimitManifest = event.LimitManifest
	LimitPhotos   = event.LimitPhotos
	LimitOutage   = event.LimitOutage
)
