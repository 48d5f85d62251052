package observe

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
)

// testStats returns figures that move: Rows grows with every call.
func testStats() func() event.Stats {
	var n atomic.Int64
	started := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	return func() event.Stats {
		i := n.Add(1)
		return event.Stats{RunID: 7, Started: started, Now: started.Add(100 * time.Second), Total: 1000,
			Rows: 100 + i, Enrolled: 80, Skipped: 10, Rejected: 5, Failed: 2, Pending: 3 + i,
			Requests: map[string]int64{smileid.AnswerEnrolled: 80, smileid.AnswerThrottled: 12, smileid.AnswerRefused: 5},
			Control: event.Control{Rate: 20, LearnedRate: 18.5, InFlight: 9, Window: 12, Limiter: event.LimitOutage,
				DownSince: started.Add(90 * time.Second)},
			LastSuccess: started.Add(99 * time.Second)}
	}
}

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want, failing the test if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no %s sample with labels %v", name, want)
	return 0
}

func readFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return parse(t, f)
}

func TestFileWritesAtStartAndFinish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulkenroll.prom")
	m := NewMetricsFile(path, time.Hour, map[string]string{"shard": "1/4"})
	stats := testStats()
	m.Start(stats)
	fams := readFile(t, path)
	shard := map[string]string{"shard": "1/4"}
	with := func(k, v string) map[string]string { return map[string]string{"shard": "1/4", k: v} }
	checks := map[string]struct {
		labels map[string]string
		want   float64
	}{
		"bulkenroll_rows/enrolled":                  {with("state", "enrolled"), 80},
		"bulkenroll_rows/skipped":                   {with("state", "skipped"), 10},
		"bulkenroll_rows/rejected":                  {with("state", "rejected"), 5},
		"bulkenroll_rows/failed":                    {with("state", "failed"), 2},
		"bulkenroll_rows/pending":                   {with("state", "pending"), 4},
		"bulkenroll_rows_read":                      {shard, 101},
		"bulkenroll_rows_total":                     {shard, 1000},
		"bulkenroll_requests_total/enrolled":        {with("answer", "enrolled"), 80},
		"bulkenroll_requests_total/throttled":       {with("answer", "throttled"), 12},
		"bulkenroll_requests_total/transport":       {with("answer", "transport"), 0},
		"bulkenroll_throttled_total":                {shard, 12},
		"bulkenroll_rate_limit_per_second":          {shard, 20},
		"bulkenroll_learned_rate_per_second":        {shard, 18.5},
		"bulkenroll_rows_per_second":                {shard, 0.87}, // settled rows: (80+5+2) / 100 s
		"bulkenroll_requests_in_flight":             {shard, 9},
		"bulkenroll_requests_window":                {shard, 12},
		"bulkenroll_limited_by/outage":              {with("limiter", "outage"), 1},
		"bulkenroll_down_since_timestamp_seconds":   {shard, 1740823290},
		"bulkenroll_last_success_timestamp_seconds": {shard, 1740823299},
		"bulkenroll_run_start_timestamp_seconds":    {shard, 1740823200},
		"bulkenroll_run_id":                         {shard, 7},
		"bulkenroll_run_finished":                   {shard, 0},
		"bulkenroll_run_outcome/running":            {with("outcome", "running"), 1},
		"bulkenroll_run_outcome/finished":           {with("outcome", "finished"), 0},
	}
	for key, c := range checks {
		name, _, _ := strings.Cut(key, "/")
		if got := value(t, fams, name, c.labels); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", key, got, c.want)
		}
	}
	if _, ok := fams["bulkenroll_eta_seconds"]; !ok {
		t.Errorf("no ETA while running")
	}
	if got := fams["bulkenroll_requests_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("requests_total is a %v, want a counter", got)
	}

	final := stats()
	final.Pending = 0
	final.Outcome = event.Interrupted
	m.Finish(final, errors.New("interrupted"))
	fams = readFile(t, path)
	if v := value(t, fams, "bulkenroll_run_finished", shard); v != 1 {
		t.Errorf("run_finished = %v after Finish", v)
	}
	if v := value(t, fams, "bulkenroll_run_outcome", with("outcome", "interrupted")); v != 1 {
		t.Errorf("run_outcome{interrupted} = %v", v)
	}
	if v := value(t, fams, "bulkenroll_rows", with("state", "pending")); v != 0 {
		t.Errorf("final pending = %v, want 0", v)
	}
	if _, ok := fams["bulkenroll_eta_seconds"]; ok {
		t.Errorf("an ETA after the end")
	}
	if err := m.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		t.Errorf("metrics file mode %v, %v: the collector must be able to read it", fi.Mode(), err)
	}
}

func TestMetricsOutcome(t *testing.T) {
	cases := []struct {
		final string // the final figures' Outcome
		err   error
		want  string
	}{
		{event.Finished, nil, OutcomeFinished},
		{event.Interrupted, context.Canceled, OutcomeInterrupted},
		{event.Stopped, errors.New("stopped: 2205"), OutcomeStopped},
		{event.Failed, errors.New("disk full"), OutcomeError},
		{"", nil, OutcomeFinished},
		{"", errors.New("disk full"), OutcomeError},
	}
	for _, c := range cases {
		if got := metricsOutcome(event.Stats{Outcome: c.final}, c.err); got != c.want {
			t.Errorf("metricsOutcome(%q, %v) = %q, want %q", c.final, c.err, got, c.want)
		}
	}
}

// TestFileAtomic reads the file again and again while it is rewritten
// every millisecond: every read must parse whole.
func TestFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulkenroll.prom")
	m := NewMetricsFile(path, time.Millisecond, nil)
	m.Start(testStats())
	deadline := time.Now().Add(500 * time.Millisecond)
	reads := 0
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		fams := parse(t, strings.NewReader(string(b)))
		if len(fams) < 14 {
			t.Fatalf("read %d: %d metric families, a partial file?\n%s", reads, len(fams), b)
		}
		reads++
	}
	m.Finish(testStats()(), nil)
	if reads < 10 {
		t.Errorf("only %d reads", reads)
	}
	// Only the metrics file is left: no temporary files.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d files", len(entries))
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
}

func TestFileWriteError(t *testing.T) {
	m := NewMetricsFile(filepath.Join(t.TempDir(), "no", "such", "folder", "x.prom"), time.Hour, nil)
	m.Start(testStats())
	m.Finish(testStats()(), nil)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "metrics file") {
		t.Errorf("Err = %v, want the write error", err)
	}
}

func TestServe(t *testing.T) {
	m := NewMetricsFile("", time.Hour, map[string]string{"job": "nightly"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	get := func() map[string]*dto.MetricFamily {
		resp, err := http.Get("http://" + addr.String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		return parse(t, resp.Body)
	}
	if fams := get(); len(fams) != 0 {
		t.Errorf("%d metric families before the run starts", len(fams))
	}
	m.Start(testStats())
	var wg sync.WaitGroup
	for range 4 { // concurrent scrapes
		wg.Go(func() { get() })
	}
	wg.Wait()
	fams := get()
	if v := value(t, fams, "bulkenroll_rows", map[string]string{"job": "nightly", "state": "enrolled"}); v != 80 {
		t.Errorf("served rows{enrolled} = %v", v)
	}
	if v := value(t, fams, "bulkenroll_rows_read", nil); v < 102 {
		t.Errorf("served rows_read = %v: not live", v)
	}
	m.Finish(testStats()(), nil)
	if v := value(t, get(), "bulkenroll_run_outcome", map[string]string{"outcome": "finished"}); v != 1 {
		t.Errorf("served run_outcome{finished} = %v", v)
	}
	if _, err := m.Serve(ctx, addr.String()); err == nil {
		t.Errorf("a second Serve on the same address succeeded")
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	if _, err := http.Get("http://" + addr.String() + "/metrics"); err == nil {
		t.Errorf("still serving after the context ended")
	}
}
