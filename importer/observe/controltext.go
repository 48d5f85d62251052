package observe

import (
	"fmt"
	"strings"
	"time"

	"bulkenroll/importer/event"
)

// DefaultReportEvery is the time between progress lines (without a bar)
// and between the JSON log's progress records.
const DefaultReportEvery = 5 * time.Second

// Hint says what holds the run back, for people, or "" when nothing in
// particular does. The progress line, the summary and status show it.
func Hint(c event.Control) string {
	switch c.Limiter {
	case event.LimitQuota:
		return "held back by the quota"
	case event.LimitMaxRate:
		return "at --max-rate"
	case event.LimitRate:
		return "at --rate"
	case event.LimitWorkers:
		return "the workers are full (raise --max-workers, or --workers if you set it)"
	case event.LimitManifest:
		return "waiting for the manifest"
	case event.LimitPhotos:
		return "waiting for photos"
	case event.LimitOutage:
		if c.DownSince.IsZero() {
			return "service not answering; probing"
		}
		return "service not answering since " + c.DownSince.Local().Format(time.TimeOnly) + "; probing"
	}
	return string(c.Limiter)
}

// ControlText is the control's figures as every display words them: the rate in
// force, the learned quota, the requests in flight and the window, and the
// hint, joined by " · "; "" when there is nothing to show.
func ControlText(c event.Control) string {
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
	if h := Hint(c); h != "" {
		parts = append(parts, h)
	}
	return strings.Join(parts, " · ")
}

// LearnedText words a learned quota, the same way everywhere.
func LearnedText(perSecond float64) string {
	return fmt.Sprintf("learned quota about %.0f/s", perSecond)
}
