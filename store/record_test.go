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
