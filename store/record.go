package store

import (
	"fmt"
	"time"
)

// State is where a user's row stands.
type State string

// The four states a row can end in.
const (
	// Enrolled: Smile ID confirmed the enrollment (or a retry of an
	// earlier unknown outcome answered 2209).
	Enrolled State = "enrolled"
	// Rejected: the row is invalid, or Smile ID refused it for good.
	Rejected State = "rejected"
	// Failed: transient failures used up the retries; the next run tries again.
	Failed State = "failed"
	// Pending: not reached yet, or a request is (or was, before a crash) in flight.
	Pending State = "pending"
)

// States lists every state, in the order reports show them.
var States = []State{Enrolled, Rejected, Failed, Pending}

// ParseState returns the State named s.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (want enrolled, rejected, failed or pending)", s)
}

// Record is what the store keeps for one user (or for one manifest row that
// cannot be keyed by a user, see RowKey).
type Record struct {
	// UserID is the manifest's user_id, as given.
	UserID string `json:"user_id"`
	// State is the row's state.
	State State `json:"state"`
	// Line is the manifest line the record was last seen at.
	Line int `json:"line"`
	// CreatedAt is the user_created_at value sent.
	CreatedAt string `json:"user_created_at,omitempty"`
	// Photo is the photo path as the manifest gave it.
	Photo string `json:"photo,omitempty"`
	// PhotoSHA256 is the hex SHA-256 of the photo Smile ID refused, so that a
	// later run can tell whether the photo changed; empty for other states.
	PhotoSHA256 string `json:"photo_sha256,omitempty"`
	// Attempts counts the requests sent (or about to be sent) for this user
	// over every run. A crash between the mark and the request still counts.
	Attempts int `json:"attempts"`
	// ResultCode is Smile ID's ResultCode on success or its error code on
	// refusal; empty for rows refused before sending.
	ResultCode string `json:"result_code,omitempty"`
	// ResultText is Smile ID's ResultText or error text.
	ResultText string `json:"result_text,omitempty"`
	// SmileJobID is the SmileJobID of the enrollment.
	SmileJobID string `json:"smile_job_id,omitempty"`
	JobID      string `json:"job_id,omitempty"`
	// Error explains a rejected, failed or interrupted row.
	Error string `json:"error,omitempty"`
	// Run is the ID of the last run that checked or sent this row (a run
	// that skips an enrolled row leaves its record as it was).
	Run uint64 `json:"run"`
	// UpdatedAt is when the record last changed.
	UpdatedAt time.Time `json:"updated_at"`
}

// RejectedByAPI reports whether Smile ID itself refused the row (as opposed
// to a row refused by validation before sending).
func (r *Record) RejectedByAPI() bool {
	return r.State == Rejected && r.ResultCode != ""
}

// RowKeyPrefix starts the keys of records for manifest rows that have no
// usable user_id of their own (missing or invalid IDs, duplicates). The byte
// cannot appear in a valid user_id, so these keys never collide with users,
// and they sort before every user key.
const RowKeyPrefix = "\x00"

// RowKey is the key of the record for manifest line n when the row cannot be
// keyed by its user_id. Such records describe the latest run only.
func RowKey(line int) string {
	return fmt.Sprintf("%sline:%09d", RowKeyPrefix, line)
}
