package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/store"
)

// opsStore makes a store with a finished run #1 (u1 enrolled, u2 rejected),
// a run #2 (u3 failed, u4 enrolled with a job id) and returns its path and
// run #2. ended false leaves run #2 without an end, like a killed run.
func opsStore(t *testing.T, ended bool) (string, store.Run) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ops.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Bind("partner", "https://testapi.smileidentity.com"); err != nil {
		t.Fatal(err)
	}
	if err := st.BindShard("1/4"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r1, err := st.BeginRun("m.csv", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	recs := []store.Record{
		{UserID: "u1", State: store.Enrolled, Run: r1.ID, SmileJobID: "111", ResultCode: "0840", UpdatedAt: now},
		{UserID: "u2", State: store.Rejected, Run: r1.ID, ResultCode: "2213", Error: "bad", UpdatedAt: now},
	}
	if err := <-st.PutBatch([]string{"u1", "u2"}, recs); err != nil {
		t.Fatal(err)
	}
	r1.Outcome, r1.Ended = "finished", now.Add(-50*time.Minute)
	if err := st.EndRun(r1); err != nil {
		t.Fatal(err)
	}
	r2, err := st.BeginRun("m.csv", now.Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	recs = []store.Record{
		{UserID: "u3", State: store.Failed, Run: r2.ID, Error: "time-out", UpdatedAt: now},
		{UserID: "u4", State: store.Enrolled, Run: r2.ID, SmileJobID: "444", JobID: "job-444", ResultCode: "0840", UpdatedAt: now},
	}
	if err := <-st.PutBatch([]string{"u3", "u4"}, recs); err != nil {
		t.Fatal(err)
	}
	if ended {
		r2.Outcome, r2.Ended = "finished", now
		if err := st.EndRun(r2); err != nil {
			t.Fatal(err)
		}
	}
	return path, r2
}

// holdStore opens path for writing, as a run does, until the test ends.
func holdStore(t *testing.T, path string) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
}

// liveOf returns a fresh snapshot of run r by this process.
func liveOf(t *testing.T, r store.Run) store.Live {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	now := time.Now()
	return store.Live{PID: os.Getpid(), Host: host, RunID: r.ID, Manifest: "m.csv", Shard: "1/4",
		Started: r.Started, Updated: now, Total: 1000, Rows: 250, Enrolled: 200, Skipped: 10, Rejected: 5,
		Failed: 3, Pending: 32, RowsPerSecond: 4.2, Rate: 5, LearnedRate: 5, InFlight: 3, Window: 7,
		Limiter: string(event.LimitQuota), ETASeconds: 178, LastSuccess: now}
}

func runStatus(t *testing.T, path string, asJSON bool) (string, error) {
	t.Helper()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- showStatus(statusOptions{streams: streams{Out: &out, Err: &out}, StorePath: path, JSON: asJSON})
	}()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(10 * time.Second):
		t.Fatalf("status hangs")
	}
	return "", nil
}

func TestStatusLiveWhileRunHoldsStore(t *testing.T) {
	path, r2 := opsStore(t, false)
	holdStore(t, path)
	if err := store.WriteLive(path, liveOf(t, r2)); err != nil {
		t.Fatal(err)
	}
	out, err := runStatus(t, path, false)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []string{"in use by run #2", "rows      250 of 1000 (25.0%)", "enrolled  200", "shard     1/4",
		"4.2 rows/s", "ETA       2m58s", "pending   32",
		// The run's control, worded as its progress line words it.
		"speed     4.2 rows/s · " + observe.ControlText(liveControl(liveOf(t, r2))),
		"rate 5.0/s · learned quota about 5/s · 3 in flight of 7 · held back by the quota"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	out, err = runStatus(t, path, true)
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var got struct {
		Store string         `json:"store"`
		Live  map[string]any `json:"live"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if got.Store != path || got.Live["running"] != true || got.Live["rows"] != 250.0 || got.Live["run_id"] != 2.0 ||
		got.Live["eta_seconds"] != 178.0 || got.Live["shard"] != "1/4" {
		t.Errorf("status --json = %s", out)
	}
	if got.Live["in_flight"] != 3.0 || got.Live["window"] != 7.0 || got.Live["limiter"] != "quota" {
		t.Errorf("status --json lacks the control's figures: %s", out)
	}
	for _, k := range []string{"pid", "host", "started", "updated", "rows_per_second", "rate", "learned_rate", "last_success", "done"} {
		if _, ok := got.Live[k]; !ok {
			t.Errorf("status --json live lacks %q: %s", k, out)
		}
	}
}

func TestStatusLockedWithoutLiveStatus(t *testing.T) {
	path, _ := opsStore(t, false)
	holdStore(t, path)
	out, err := runStatus(t, path, false)
	if !errors.Is(err, store.ErrLocked) || exitCode(err) != 2 {
		t.Fatalf("status: %v, want ErrLocked (exit 2)", err)
	}
	if !strings.Contains(err.Error(), "publishes no live status (started by an older bulkenroll?)") || out != "" {
		t.Errorf("status: %v; output %q", err, out)
	}
}

func TestStatusLockedStaleLiveStatus(t *testing.T) {
	path, r2 := opsStore(t, false)
	holdStore(t, path)
	l := liveOf(t, r2)
	l.PID = deadPID(t)
	if err := store.WriteLive(path, l); err != nil {
		t.Fatal(err)
	}
	_, err := runStatus(t, path, true)
	if !errors.Is(err, store.ErrLocked) || exitCode(err) != 2 {
		t.Fatalf("status: %v, want ErrLocked (exit 2)", err)
	}
	for _, want := range []string{"in use by a process that published no live status", "run #2", "gone (killed?)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("status error lacks %q: %v", want, err)
		}
	}
}

func TestStatusKilledRun(t *testing.T) {
	path, r2 := opsStore(t, false)
	l := liveOf(t, r2)
	l.PID = deadPID(t)
	l.Updated = time.Now().Add(-time.Minute)
	if err := store.WriteLive(path, l); err != nil {
		t.Fatal(err)
	}
	out, err := runStatus(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "run #2 was killed (its process is gone); the next run resumes") {
		t.Errorf("status does not say run #2 was killed:\n%s", out)
	}
	out, err = runStatus(t, path, true)
	if err != nil {
		t.Fatal(err)
	}
	var got statusJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Live == nil || !got.Live.Killed || got.Live.Running || got.Shard != "1/4" || got.Total != 4 || got.Counts["failed"] != 1 {
		t.Errorf("status --json = %s", out)
	}
}

func TestStatusFinishedRunIgnoresLeftoverLive(t *testing.T) {
	path, r2 := opsStore(t, true)
	l := liveOf(t, r2)
	l.PID = deadPID(t)
	if err := store.WriteLive(path, l); err != nil {
		t.Fatal(err)
	}
	out, err := runStatus(t, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "killed") || !strings.Contains(out, "last run  #2 finished") {
		t.Errorf("status:\n%s", out)
	}
}

func runReport(t *testing.T, o reportOptions) (string, error) {
	t.Helper()
	var out bytes.Buffer
	o.streams = streams{Out: &out, Err: &out}
	if o.Format == "" {
		o.Format = "csv"
	}
	done := make(chan error, 1)
	go func() { done <- writeReport(o) }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(10 * time.Second):
		t.Fatalf("report hangs")
	}
	return "", nil
}

func TestReportLockedFailsFast(t *testing.T) {
	path, _ := opsStore(t, false)
	holdStore(t, path)
	start := time.Now()
	out, err := runReport(t, reportOptions{StorePath: path})
	if !errors.Is(err, store.ErrLocked) || exitCode(err) != 2 {
		t.Fatalf("report: %v, want ErrLocked (exit 2)", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("report took %s to give up", took)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "bulkenroll status --store "+path) || out != "" {
		t.Errorf("report: %v; output %q", err, out)
	}
}

func TestReportRunFilterAndJobID(t *testing.T) {
	path, _ := opsStore(t, true)
	out, err := runReport(t, reportOptions{StorePath: path, Run: 2})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "user_id,state,result_code,result_text,smile_job_id,attempts,error,updated_at,job_id,photo_note" {
		t.Errorf("header %q", recs[0])
	}
	if len(recs) != 3 || recs[1][0] != "u3" || recs[2][0] != "u4" || recs[2][4] != "444" || recs[2][8] != "job-444" {
		t.Errorf("report --run 2:\n%s", out)
	}

	out, err = runReport(t, reportOptions{StorePath: path, Run: 1, State: "rejected", Format: "jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	var r reportRecord
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.UserID != "u2" || strings.Count(out, "\n") != 1 {
		t.Errorf("report --run 1 --state rejected: %v\n%s", err, out)
	}

	out, err = runReport(t, reportOptions{StorePath: path, Format: "jsonl"})
	if err != nil || strings.Count(out, "\n") != 4 || !strings.Contains(out, `"job_id":"job-444"`) {
		t.Errorf("report (all): %v\n%s", err, out)
	}

	_, err = runReport(t, reportOptions{StorePath: path, Run: 3})
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no run #3 (its runs are #1 to #2)") {
		t.Errorf("report --run 3: %v, want a usage error", err)
	}
}

func TestReportRunFlag(t *testing.T) {
	path, _ := opsStore(t, true)
	var out, errOut bytes.Buffer
	err := newApp(streams{In: strings.NewReader(""), Out: &out, Err: &errOut}).RunContext(context.Background(),
		[]string{"bulkenroll", "report", "--store", path, "--run", "1"})
	if err != nil || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("report --run 1: %v\n%s", err, out.String())
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}
