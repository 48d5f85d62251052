package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkenroll/store"
)

// TestReportVerify lists verification jobs in both formats, with the
// contract's columns first and "unfinished" for a job left mid-way.
func TestReportVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run, err := st.BeginVerifyRun("all", now)
	if err != nil {
		t.Fatal(err)
	}
	err = st.PutVerifyJobs([]store.VerifyJob{
		{RunID: run.ID, UserID: "a", JobID: "ja", SmileJobID: "0000000001", Step: store.JobDone, ResultCode: "1220", ResultText: "Authenticated",
			Outcome: "authenticated", Compare: "Completed", Confidence: "99", UpdatedAt: now},
		{RunID: run.ID, UserID: "b", JobID: "jb", Step: store.JobPrepared, UpdatedAt: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out bytes.Buffer
	if err := writeReport(reportOptions{streams: streams{Out: &out}, StorePath: path, Format: "csv", Verify: true}); err != nil {
		t.Fatal(err)
	}
	want := "user_id,job_id,smile_job_id,result_code,result_text,outcome,compare,confidence,updated_at,reason\n" +
		"a,ja,0000000001,1220,Authenticated,authenticated,Completed,99,2026-01-02T03:04:05Z,\n" +
		"b,jb,,,,unfinished,,,2026-01-02T03:04:05Z,\n"
	if out.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeReport(reportOptions{streams: streams{Out: &out}, StorePath: path, Format: "jsonl", Verify: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var rec map[string]string
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &rec) != nil || rec["outcome"] != "authenticated" || rec["confidence"] != "99" {
		t.Errorf("jsonl:\n%s", out.String())
	}
}
