package event

import (
	"testing"
	"time"
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
