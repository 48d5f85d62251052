package observe_test

import (
	"bulkenroll/importer/testkit"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// syncBuffer is a bytes.Buffer safe for the observer's goroutine.
type syncBuffer = testkit.Buffer

func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestLogObserver(t *testing.T) {
	var buf syncBuffer
	obs := observe.NewLogObserver(slog.New(slog.NewJSONHandler(&buf, nil)), 10*time.Millisecond)
	started := time.Now().Add(-100 * time.Second)
	stats := func() event.Stats {
		return event.Stats{RunID: 4, Started: started, Now: started.Add(100 * time.Second), Total: 1000,
			Rows: 230, Enrolled: 150, Skipped: 10, Rejected: 30, Failed: 20, Pending: 0,
			Requests: map[string]int64{smileid.AnswerThrottled: 3},
			Control: event.Control{Rate: 5, LearnedRate: 4.5, InFlight: 6, Window: 9, Limiter: event.LimitOutage,
				DownSince: started.Add(95 * time.Second)},
			LastSuccess: time.Now()}
	}
	obs.Start(stats)
	obs.Row(event.RowEvent{Row: manifest.Row{Line: 7, UserID: "u7"}, State: store.Rejected, Code: "2213", Reason: "bad photo"})
	obs.Row(event.RowEvent{Row: manifest.Row{Line: 8, UserID: "u8"}, State: store.Failed, Reason: "time-out, retries used up"})
	obs.Row(event.RowEvent{Row: manifest.Row{Line: 9, UserID: "u9"}, State: store.Enrolled, Code: "0840"})
	time.Sleep(60 * time.Millisecond)
	final := stats()
	final.Outcome = event.Interrupted
	obs.Finish(final, errors.New("interrupted"))
	out := buf.String()
	if strings.Contains(out, "u9") {
		t.Errorf("an enrolled row was logged:\n%s", out)
	}

	var rows, progress, summary []map[string]any
	for _, m := range logLines(t, out) {
		switch m["msg"] {
		case "row":
			rows = append(rows, m)
		case "progress":
			progress = append(progress, m)
		case "summary":
			summary = append(summary, m)
		default:
			t.Errorf("unexpected record %v", m)
		}
	}
	if len(rows) != 2 || rows[0]["line"] != 7.0 || rows[0]["user_id"] != "u7" || rows[0]["state"] != "rejected" ||
		rows[0]["code"] != "2213" || rows[0]["reason"] != "bad photo" || rows[0]["level"] != "WARN" ||
		rows[1]["state"] != "failed" || rows[1]["code"] != "" {
		t.Errorf("row records: %v", rows)
	}
	if len(progress) < 2 {
		t.Errorf("%d progress records in 60ms at 10ms intervals", len(progress))
	}
	// rows/s and the ETA count settled rows (200 in 100 s), not the 220
	// worked rows read; the control's figures are those of the Stats.
	want := map[string]any{"run_id": 4.0, "rows": 230.0, "total": 1000.0, "enrolled": 150.0, "skipped": 10.0,
		"rejected": 30.0, "failed": 20.0, "pending": 0.0, "rows_per_second": 2.0, "rate": 5.0,
		"learned_rate": 4.5, "eta_seconds": 395.0, "throttled": 3.0, "in_flight": 6.0, "window": 9.0,
		"limiter": "outage", "hint": observe.Hint(stats().Control), "down_since": started.Add(95 * time.Second).Format(time.RFC3339Nano)}
	for _, p := range append(progress, summary...) {
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%s record: %s = %v, want %v", p["msg"], k, p[k], v)
			}
		}
		if _, ok := p["last_success"]; !ok {
			t.Errorf("%s record lacks last_success", p["msg"])
		}
	}
	if len(summary) != 1 || summary[0]["outcome"] != "interrupted" || summary[0]["error"] != "interrupted" ||
		summary[0]["seconds"] != 100.0 {
		t.Fatalf("summary: %v", summary)
	}
	// The summary is the last record: no progress after Finish.
	time.Sleep(30 * time.Millisecond)
	recs := logLines(t, buf.String())
	if last := recs[len(recs)-1]; last["msg"] != "summary" {
		t.Errorf("last record %v, want the summary", last)
	}
}

func TestLogObserverOutcomes(t *testing.T) {
	cases := []struct {
		final   string // the final figures' Outcome
		err     error
		outcome string
		level   string
	}{
		{event.Finished, nil, "finished", "INFO"},
		{event.Interrupted, errors.New("interrupted"), "interrupted", "INFO"},
		{event.Stopped, errors.New("stopped: 2205"), "stopped", "ERROR"},
		{event.Failed, errors.New("disk full"), "error", "ERROR"},
		{"", nil, "finished", "INFO"},                   // figures made by hand
		{"", errors.New("disk full"), "error", "ERROR"}, // figures made by hand
	}
	for _, c := range cases {
		var buf syncBuffer
		obs := observe.NewLogObserver(slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
		obs.Start(func() event.Stats { return event.Stats{Total: -1} })
		obs.Finish(event.Stats{Total: -1, Outcome: c.final}, c.err)
		recs := logLines(t, buf.String())
		if len(recs) != 1 || recs[0]["outcome"] != c.outcome || recs[0]["level"] != c.level {
			t.Errorf("err %v: %v", c.err, recs)
		}
		if _, ok := recs[0]["total"]; ok {
			t.Errorf("an unknown total was logged: %v", recs[0])
		}
	}
}
