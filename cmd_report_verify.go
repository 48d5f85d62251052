package main

import (
	"encoding/csv"
	"encoding/json"
	"time"

	"bulkenroll/store"
)

// verifyRecord is one line of `report --verify`: one authentication job.
type verifyRecord struct {
	UserID     string `json:"user_id"`
	JobID      string `json:"job_id"`
	SmileJobID string `json:"smile_job_id"`
	ResultCode string `json:"result_code"`
	ResultText string `json:"result_text"`
	Outcome    string `json:"outcome"`
	Compare    string `json:"compare"`
	Confidence string `json:"confidence"`
	UpdatedAt  string `json:"updated_at"`
	// Reason explains the outcome (after the contract's columns).
	Reason string `json:"reason"`
}

// verifyColumns are the columns of `report --verify`.
var verifyColumns = []string{"user_id", "job_id", "smile_job_id", "result_code", "result_text", "outcome", "compare", "confidence", "updated_at", "reason"}

// verifyReport lists every verification job of the store, by verify run
// and user_id. A job a stopped verify left mid-way, without an outcome,
// shows "unfinished" until the next verify continues it.
func verifyReport(o reportOptions, st *store.Store) error {
	var line func(verifyRecord) error
	flush := func() error { return nil }
	if o.Format == "csv" {
		cw := csv.NewWriter(o.Out)
		_ = cw.Write(verifyColumns)
		line = func(r verifyRecord) error {
			return cw.Write([]string{r.UserID, r.JobID, r.SmileJobID, r.ResultCode, r.ResultText, r.Outcome, r.Compare, r.Confidence, r.UpdatedAt, r.Reason})
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(o.Out)
		line = func(r verifyRecord) error { return enc.Encode(r) }
	}
	err := st.EachVerifyJob(0, func(j store.VerifyJob) error {
		outcome := j.Outcome
		if j.Step != store.JobDone && outcome == "" {
			outcome = "unfinished"
		}
		updated := ""
		if !j.UpdatedAt.IsZero() {
			updated = j.UpdatedAt.UTC().Format(time.RFC3339)
		}
		return line(verifyRecord{UserID: j.UserID, JobID: j.JobID, SmileJobID: j.SmileJobID, ResultCode: j.ResultCode,
			ResultText: j.ResultText, Outcome: outcome, Compare: j.Compare, Confidence: j.Confidence, UpdatedAt: updated, Reason: j.Reason})
	})
	if err != nil {
		return err
	}
	return flush()
}
