package store

import (
	"testing"
	"time"
)

// TestRecordTransitions: each transition sets every field its state
// defines, and clears what an earlier state left that no longer holds.
func TestRecordTransitions(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	refused := Record{UserID: "u", State: Rejected, ResultCode: "2213", ResultText: "bad", PhotoSHA256: "abc",
		Error: "refused", Attempts: 2, OutcomeUnknown: true, Run: 1, Line: 5, PhotoNote: "resized"}

	r := refused
	r.Mark(3, 9, "2021-01-01", "p.jpg", now)
	if r.State != Pending || r.Attempts != 3 || !r.OutcomeUnknown || r.Run != 3 || r.Line != 9 ||
		r.CreatedAt != "2021-01-01" || r.Photo != "p.jpg" || r.Error == "" || !r.UpdatedAt.Equal(now) {
		t.Errorf("Mark: %+v", r)
	}

	r = refused
	r.Enroll("0840", "Enroll User", "000123", "job-9", "", now)
	if r.State != Enrolled || r.ResultCode != "0840" || r.SmileJobID != "000123" || r.JobID != "job-9" ||
		r.PhotoSHA256 != "" || r.OutcomeUnknown || r.Error != "" {
		t.Errorf("Enroll: %+v", r)
	}
	r.Enroll("2209", "already", "", "", "note", now)
	if r.SmileJobID != "000123" || r.JobID != "job-9" || r.Error != "note" {
		t.Errorf("Enroll by 2209 lost the earlier job IDs or the note: %+v", r)
	}

	r = Record{UserID: "u", State: Failed, Error: "timeout", OutcomeUnknown: true}
	r.Refuse("2213", "bad input", "Smile ID 2213", "sum", true, now)
	if r.State != Rejected || r.ResultCode != "2213" || r.ResultText != "bad input" || r.PhotoSHA256 != "sum" ||
		!r.OutcomeUnknown || !r.RejectedByAPI() {
		t.Errorf("Refuse: %+v", r)
	}

	r = refused
	r.Invalidate(4, 7, "x", "q.jpg", "photo: missing", now)
	if r.State != Rejected || r.ResultCode != "" || r.ResultText != "" || r.PhotoSHA256 != "" || r.PhotoNote != "" ||
		r.RejectedByAPI() || r.Run != 4 || r.Line != 7 || r.Error != "photo: missing" || r.Attempts != 2 {
		t.Errorf("Invalidate: %+v", r)
	}

	r = refused
	r.Fail("failed after 3 attempts", false, now)
	if r.State != Failed || r.OutcomeUnknown || r.Error != "failed after 3 attempts" {
		t.Errorf("Fail: %+v", r)
	}
}

// TestRecordJobs: a job in flight (compare) is recorded before sending,
// kept while its outcome is unknown, and closed by an answer, which moves
// the generation on; records without one (backfill) never change
// generation.
func TestRecordJobs(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	var r Record
	r.MarkJob(1, 2, "s.jpg", "job-g0", now)
	if r.State != Pending || !r.OutcomeUnknown || r.InFlightJobID != "job-g0" || r.Generation != 0 || r.Attempts != 1 ||
		r.CreatedAt != "" || r.Photo != "s.jpg" {
		t.Fatalf("MarkJob: %+v", r)
	}
	r.Fail("time-out", true, now)
	if r.InFlightJobID != "job-g0" || r.Generation != 0 {
		t.Errorf("Fail lost the job in flight: %+v", r)
	}
	r.Invalidate(2, 2, "", "s.jpg", "photo: missing", now)
	if r.InFlightJobID != "job-g0" || r.Generation != 0 {
		t.Errorf("Invalidate lost the job in flight: %+v", r)
	}
	r.MarkJob(3, 2, "s.jpg", "job-g0", now) // the same job, sent again
	r.Refuse("0841", "No Match", "no match", "sum", false, now)
	if r.InFlightJobID != "" || r.Generation != 1 {
		t.Errorf("Refuse did not close the job: %+v", r)
	}
	r.Refuse("0841", "No Match", "no match", "sum", false, now) // no job in flight: nothing to close
	if r.Generation != 1 {
		t.Errorf("a second Refuse moved the generation: %+v", r)
	}
	r.MarkJob(4, 2, "s2.jpg", "job-g1", now)
	r.Enroll("0840", "Face Match", "", "job-g1", "", now)
	if r.InFlightJobID != "" || r.Generation != 2 || r.State != Enrolled || r.JobID != "job-g1" {
		t.Errorf("Enroll did not close the job: %+v", r)
	}

	var b Record // backfill: Mark, no job
	b.Mark(1, 2, "2020-01-01", "p.jpg", now)
	b.Enroll("0840", "Enroll User", "1", "uuid", "", now)
	if b.Generation != 0 || b.InFlightJobID != "" {
		t.Errorf("a backfill record got a generation: %+v", b)
	}
}
