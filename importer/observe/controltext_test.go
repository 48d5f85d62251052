package observe

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/store"
)

func TestHints(t *testing.T) {
	down := time.Date(2025, 3, 1, 12, 3, 4, 0, time.Local)
	cases := []struct {
		c    event.Control
		want string
	}{
		{event.Control{}, ""},
		{event.Control{Limiter: event.LimitQuota}, "held back by the quota"},
		{event.Control{Limiter: event.LimitMaxRate}, "at --max-rate"},
		{event.Control{Limiter: event.LimitRate}, "at --rate"},
		{event.Control{Limiter: event.LimitWorkers}, "the workers are full (raise --max-workers, or --workers if you set it)"},
		{event.Control{Limiter: event.LimitManifest}, "waiting for the manifest"},
		{event.Control{Limiter: event.LimitPhotos}, "waiting for photos"},
		{event.Control{Limiter: event.LimitOutage, DownSince: down}, "service not answering since 12:03:04; probing"},
		{event.Control{Limiter: event.LimitOutage}, "service not answering; probing"},
		{event.Control{Limiter: "something new"}, "something new"},
	}
	for _, c := range cases {
		if got := Hint(c.c); got != c.want {
			t.Errorf("Hint of %q = %q, want %q", c.c.Limiter, got, c.want)
		}
	}
}

// TestProgressLineFigures: the progress line shows the Stats it is given:
// rows/s of settled rows, the rate, the learned quota, in flight of the
// window, and a hint only when something holds the run back.
func TestProgressLineFigures(t *testing.T) {
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	base := event.Stats{Started: started, Now: started.Add(100 * time.Second), Total: 1000, Rows: 300, Skipped: 10,
		Enrolled: 150, Rejected: 30, Failed: 20, Requests: map[string]int64{}}
	p := NewProgress(&strings.Builder{}, false, time.Hour)
	for _, lim := range []event.Limiter{event.LimitNone, event.LimitQuota, event.LimitMaxRate, event.LimitRate, event.LimitWorkers, event.LimitManifest, event.LimitPhotos, event.LimitOutage} {
		s := base
		s.Control = event.Control{Rate: 12.5, LearnedRate: 23.4, InFlight: 17, Window: 40, Limiter: lim,
			DownSince: started.Add(90 * time.Second)}
		line := p.line(s)
		for _, want := range []string{"300/1000 rows", "2.0 rows/s", "rate 12.5/s", "learned quota about 23/s",
			"17 in flight of 40", "ETA 6m35s"} {
			if !strings.Contains(line, want) {
				t.Errorf("limiter %q: line lacks %q: %s", lim, want, line)
			}
		}
		hint := Hint(s.Control)
		switch {
		case lim == event.LimitNone && !strings.HasSuffix(line, "17 in flight of 40 · ETA 6m35s"):
			t.Errorf("no limiter, yet a hint: %s", line)
		case lim != event.LimitNone && !strings.HasSuffix(line, "17 in flight of 40 · "+hint+" · ETA 6m35s"):
			t.Errorf("limiter %q: line lacks the hint %q: %s", lim, hint, line)
		}
	}
	// Nothing known yet: no rate, no window, no hint.
	s := base
	if line := p.line(s); strings.Contains(line, "in flight") || strings.Contains(line, "rate ") {
		t.Errorf("figures not given shown: %s", line)
	}
	// A dry run sends nothing: no control figures.
	s.DryRun, s.Control = true, event.Control{Rate: 5, Window: 4, Limiter: event.LimitQuota}
	if line := p.line(s); strings.Contains(line, "in flight") || strings.Contains(line, "quota") {
		t.Errorf("dry run shows the control: %s", line)
	}
}

func TestDefaultReportCadence(t *testing.T) {
	if p := NewProgress(&strings.Builder{}, false, 0); p.interval != DefaultReportEvery {
		t.Errorf("progress every %s, want %s", p.interval, DefaultReportEvery)
	}
	// The JSON log's progress records come as often as the text lines.
	if o := NewLogObserver(slog.Default(), 0).(*logObserver); o.interval != DefaultReportEvery {
		t.Errorf("JSON progress every %s, want %s", o.interval, DefaultReportEvery)
	}
}

func TestLiveFileFigures(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/s.db"
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	s := event.Stats{RunID: 3, Started: started, Now: started.Add(100 * time.Second), Total: 1000, Rows: 300, Skipped: 10,
		Enrolled: 150, Rejected: 30, Failed: 20,
		Control: event.Control{Rate: 12.5, LearnedRate: 23.4, InFlight: 17, Window: 40, Limiter: event.LimitOutage, DownSince: started.Add(90 * time.Second)}}
	lf := NewLiveFile(path, "m.csv", "", time.Hour).(*liveFile)
	lf.write(s, false)
	l, err := store.ReadLive(path)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%v %v %v %v %v %v %q %v", l.RowsPerSecond, l.ETASeconds, l.Rate, l.LearnedRate, l.InFlight, l.Window, l.Limiter, l.DownSince.Equal(s.DownSince))
	want := fmt.Sprintf("%v %v %v %v %v %v %q %v", s.RowsPerSecond(), s.ETA().Seconds(), s.Rate, s.LearnedRate, s.InFlight, s.Window, string(s.Limiter), true)
	if got != want {
		t.Errorf("live file figures %s, want the Stats' %s", got, want)
	}
}
