package importer

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"bulkenroll/store"
)

func TestSettledSpeedAndETA(t *testing.T) {
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		s    Stats
		rps  float64
		eta  time.Duration
	}{
		// 300 rows read, 100 of them still in flight or waiting: the speed
		// counts the 200 settled, not the 290 worked.
		{"settled, not read", Stats{Total: 1000, Rows: 300, Skipped: 10, Enrolled: 150, Rejected: 30, Failed: 20}, 2, 395 * time.Second},
		{"unknown total", Stats{Total: -1, Rows: 300, Enrolled: 200}, 2, 0},
		{"nothing settled", Stats{Total: 1000, Rows: 300}, 0, 0},
		{"all settled", Stats{Total: 100, Rows: 100, Skipped: 50, Enrolled: 50}, 0.5, 0},
		{"dry run counts rows it would send", Stats{DryRun: true, Total: 400, Rows: 200, Pending: 180, Rejected: 20}, 2, 100 * time.Second},
		{"early stop's pending rows are not left to do", Stats{Total: 300, Rows: 300, Enrolled: 100, Pending: 200}, 1, 0},
	}
	for _, c := range cases {
		c.s.Started, c.s.Now = started, started.Add(100*time.Second)
		if got := c.s.RowsPerSecond(); got != c.rps {
			t.Errorf("%s: RowsPerSecond %v, want %v", c.name, got, c.rps)
		}
		if got := c.s.ETA(); got != c.eta {
			t.Errorf("%s: ETA %v, want %v", c.name, got, c.eta)
		}
	}
}

// TestProgressLineFigures: the progress line shows the Stats it is given:
// rows/s of settled rows, the rate, the learned quota, in flight of the
// window, and a hint only when something holds the run back.
func TestProgressLineFigures(t *testing.T) {
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	base := Stats{Started: started, Now: started.Add(100 * time.Second), Total: 1000, Rows: 300, Skipped: 10,
		Enrolled: 150, Rejected: 30, Failed: 20, Requests: map[string]int64{}}
	p := NewProgress(&strings.Builder{}, false, time.Hour)
	for _, lim := range []Limiter{LimitNone, LimitQuota, LimitMaxRate, LimitRate, LimitWorkers, LimitManifest, LimitPhotos, LimitOutage} {
		s := base
		s.Control = Control{Rate: 12.5, LearnedRate: 23.4, InFlight: 17, Window: 40, Limiter: lim,
			DownSince: started.Add(90 * time.Second)}
		line := p.line(s)
		for _, want := range []string{"300/1000 rows", "2.0 rows/s", "rate 12.5/s", "learned quota about 23/s",
			"17 in flight of 40", "ETA 6m35s"} {
			if !strings.Contains(line, want) {
				t.Errorf("limiter %q: line lacks %q: %s", lim, want, line)
			}
		}
		hint := s.Hint()
		switch {
		case lim == LimitNone && !strings.HasSuffix(line, "17 in flight of 40 · ETA 6m35s"):
			t.Errorf("no limiter, yet a hint: %s", line)
		case lim != LimitNone && !strings.HasSuffix(line, "17 in flight of 40 · "+hint+" · ETA 6m35s"):
			t.Errorf("limiter %q: line lacks the hint %q: %s", lim, hint, line)
		}
	}
	// Nothing known yet: no rate, no window, no hint.
	s := base
	if line := p.line(s); strings.Contains(line, "in flight") || strings.Contains(line, "rate ") {
		t.Errorf("figures not given shown: %s", line)
	}
	// A dry run sends nothing: no control figures.
	s.DryRun, s.Control = true, Control{Rate: 5, Window: 4, Limiter: LimitQuota}
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
	s := Stats{RunID: 3, Started: started, Now: started.Add(100 * time.Second), Total: 1000, Rows: 300, Skipped: 10,
		Enrolled: 150, Rejected: 30, Failed: 20,
		Control: Control{Rate: 12.5, LearnedRate: 23.4, InFlight: 17, Window: 40, Limiter: LimitOutage, DownSince: started.Add(90 * time.Second)}}
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
