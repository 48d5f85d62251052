package ratelimit

import (
	"fmt"
	"strings"
	"time"
)

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

// Hint says what holds the run back, for people, or "" when nothing in
// particular does. The progress line, the summary and status show it.
func (c Control) Hint() string {
	switch c.Limiter {
	case LimitQuota:
		return "held back by the quota"
	case LimitMaxRate:
		return "at --max-rate"
	case LimitRate:
		return "at --rate"
	case LimitWorkers:
		return "the workers are full (raise --max-workers, or --workers if you set it)"
	case LimitManifest:
		return "waiting for the manifest"
	case LimitPhotos:
		return "waiting for photos"
	case LimitOutage:
		if c.DownSince.IsZero() {
			return "service not answering; probing"
		}
		return "service not answering since " + c.DownSince.Local().Format(time.TimeOnly) + "; probing"
	}
	return string(c.Limiter)
}

// Text is the control's figures as every display words them: the rate in
// force, the learned quota, the requests in flight and the window, and the
// hint, joined by " · "; "" when there is nothing to show.
func (c Control) Text() string {
	var parts []string
	if c.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate %.1f/s", c.Rate))
	}
	if c.LearnedRate > 0 {
		parts = append(parts, LearnedText(c.LearnedRate))
	}
	if c.Window > 0 {
		parts = append(parts, fmt.Sprintf("%d in flight of %d", c.InFlight, c.Window))
	}
	if h := c.Hint(); h != "" {
		parts = append(parts, h)
	}
	return strings.Join(parts, " · ")
}

// LearnedText words a learned quota, the same way everywhere.
func LearnedText(perSecond float64) string {
	return fmt.Sprintf("learned quota about %.0f/s", perSecond)
}
