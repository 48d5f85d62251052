package importer

import (
	"time"

	"bulkenroll/importer/ratelimit"
)

// DefaultReportEvery is the time between progress lines (without a bar)
// and between the JSON log's progress records.
const DefaultReportEvery = 5 * time.Second

// LearnedText words a learned quota, the same way everywhere.
func LearnedText(perSecond float64) string { return ratelimit.LearnedText(perSecond) }
