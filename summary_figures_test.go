package main

import (
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/importer/smileid"
)

// TestRateSummaryFigures: the summary words the Stats' figures as the
// progress line does: the same rows/s of settled rows, the same learned
// quota, the window, and the workers' hint.
func TestRateSummaryFigures(t *testing.T) {
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	s := event.Stats{Started: started, Now: started.Add(100 * time.Second), Total: 1000, Rows: 1000, Skipped: 100,
		Enrolled: 850, Rejected: 30, Failed: 20,
		Requests: map[string]int64{smileid.AnswerEnrolled: 850, smileid.AnswerThrottled: 40, smileid.AnswerRefused: 30},
		Control:  event.Control{Rate: 14.2, LearnedRate: 13.6, Window: 24, Limiter: event.LimitWorkers}}
	got := rateSummary(s, true, true)
	for _, want := range []string{"920 sent", "40 throttled (429)", "9.0 rows/s", observe.LearnedText(s.LearnedRate),
		"learned quota about 14/s (sustained", "window 24", observe.Hint(s.Control)} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	// A fixed rate: no learned quota, the rate; no hint when nothing holds it back.
	s.Limiter = event.LimitNone
	got = rateSummary(s, false, false)
	if !strings.Contains(got, "rate limit 14.2/s") || strings.Contains(got, "learned") || strings.Contains(got, "workers") {
		t.Errorf("fixed-rate summary %q", got)
	}
	if got := rateSummary(event.Stats{Requests: map[string]int64{}}, true, false); got != "" {
		t.Errorf("summary of a run that sent nothing: %q", got)
	}
}
