package store

import (
	"encoding/json"
	"testing"
	"time"
)

// TestVerifyRunsAndJobs checks that verify runs and jobs are saved apart
// from users' records, read back in order, survive reopening, and that a
// read-only store without them lists none.
func TestVerifyRunsAndJobs(t *testing.T) {
	s, path := openTemp(t)
	if _, found, err := s.LastVerifyRun(); err != nil || found {
		t.Fatalf("a new store has a verify run: %v %v", found, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r1, err := s.BeginVerifyRun("sample 2", now)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.BeginVerifyRun("all", now)
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID != 1 || r2.ID != 2 || r1.Nonce == "" || r1.Nonce == r2.Nonce || !r2.Unfinished() {
		t.Fatalf("runs %+v %+v", r1, r2)
	}
	jobs := []VerifyJob{
		{RunID: 1, UserID: "b", JobID: "j-b", Step: JobSelected, UpdatedAt: now},
		{RunID: 1, UserID: "a", JobID: "j-a", Step: JobUploaded, UploadURL: "u", Server: json.RawMessage(`{"x":1}`), UpdatedAt: now},
		{RunID: 2, UserID: "a", JobID: "j-a2", Step: JobDone, Outcome: "authenticated", UpdatedAt: now},
	}
	if err := s.PutVerifyJobs(jobs); err != nil {
		t.Fatal(err)
	}
	jobs[0].Step = JobPrepared
	if err := s.PutVerifyJob(jobs[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVerifyJob(VerifyJob{RunID: 1, UserID: "c"}); err == nil {
		t.Error("a job without a job_id was saved")
	}
	r2.Outcome, r2.Ended = "finished", now
	if err := s.EndVerifyRun(r2); err != nil {
		t.Fatal(err)
	}
	counts, err := s.Counts()
	if err != nil || counts[Enrolled]+counts[Pending]+counts[Rejected]+counts[Failed] != 0 {
		t.Fatalf("verification changed users' records: %v %v", counts, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var got []string
	if err := ro.EachVerifyJob(1, func(j VerifyJob) error { got = append(got, j.UserID+":"+j.Step); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "a:uploaded" || got[1] != "b:prepared" {
		t.Errorf("run 1's jobs %v", got)
	}
	n := 0
	_ = ro.EachVerifyJob(0, func(VerifyJob) error { n++; return nil })
	if n != 3 {
		t.Errorf("%d jobs in all, want 3", n)
	}
	last, found, err := ro.LastVerifyRun()
	if err != nil || !found || last.ID != 2 || last.Unfinished() {
		t.Errorf("last run %+v %v %v", last, found, err)
	}

	fresh, _ := openTemp(t)
	if err := fresh.EachVerifyJob(0, func(VerifyJob) error { t.Error("a job in a new store"); return nil }); err != nil {
		t.Error(err)
	}
}
