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
	// JobID is the job_id of the answer's PartnerParams: Smile ID's own
	// reference of the enrollment, for audits.
	JobID string `json:"job_id,omitempty"`
	// OutcomeUnknown is set when a request for this user may have enrolled
	// it without the answer being known: set as the row is marked before a
	// request goes out, kept after a time-out or a dropped connection, and
	// cleared by an answer that says what happened. A 2209 counts as
	// enrolled only when it is set.
	OutcomeUnknown bool `json:"outcome_unknown,omitempty"`
	// PhotoNote says how the photo was converted before sending, if it was.
	PhotoNote string `json:"photo_note,omitempty"`
	// Error explains a rejected, failed or interrupted row.
	Error string `json:"error,omitempty"`
	// Run is the ID of the last run that checked or sent this row (a run
	// that skips an enrolled row leaves its record as it was).
	Run uint64 `json:"run"`
	// UpdatedAt is when the record last changed.
	UpdatedAt time.Time `json:"updated_at"`
	// Generation counts the answers Smile ID gave to this user's requests
	// of a product whose job_id the tool chooses (compare; see
	// Store.JobID): each request carries the job_id of the current
	// generation, so a request sent again after an unknown outcome carries
	// the same job_id (and a 2215 "job already exists" then says the first
	// one arrived), while a row sent again after an answer (its photos
	// changed, --retry-rejected) carries a new one. Always 0 for backfill,
	// whose job IDs Smile ID makes.
	Generation uint64 `json:"generation,omitempty"`
	// InFlightJobID is the job_id of the request in flight: recorded by
	// MarkJob before the request goes out, kept while no answer to it is
	// saved (Fail, Invalidate and a crash keep it), and cleared by the
	// answer (Enroll, Refuse), which also moves Generation on. Empty for
	// backfill.
	InFlightJobID string `json:"in_flight_job_id,omitempty"`
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

// The transitions below are the only ways the importer changes a record:
// each sets every field that its new state defines, so no state is left
// with stale fields of an earlier one.

// Mark records that a request for the row is about to go out: the row is
// pending, its attempt is counted and its outcome is unknown until an answer
// is saved, so a crash after the request leaves the right trace.
func (r *Record) Mark(run uint64, line int, createdAt, photo string, now time.Time) {
	r.Run, r.Line, r.CreatedAt, r.Photo = run, line, createdAt, photo
	r.State, r.Attempts, r.OutcomeUnknown = Pending, r.Attempts+1, true
	r.Error, r.UpdatedAt = "being sent: its request may have gone out, and no answer was saved", now.UTC()
}

// MarkJob is Mark for a product whose job_id the tool chooses (compare):
// jobID, the job_id the request carries (Store.JobID of the record's
// Generation), is recorded as in flight with the mark, before the request
// goes out. createdAt is not sent by such products and is left empty.
func (r *Record) MarkJob(run uint64, line int, photo, jobID string, now time.Time) {
	r.Mark(run, line, "", photo, now)
	r.InFlightJobID = jobID
}

// answered closes the job in flight, if any: an answer to it is saved, so
// the next request is a new job (the generation moves on).
func (r *Record) answered() {
	if r.InFlightJobID != "" {
		r.Generation++
		r.InFlightJobID = ""
	}
}

// Enroll records Smile ID's confirmation (or a 2209 after an unknown
// outcome). It closes the job in flight (see InFlightJobID).
func (r *Record) Enroll(code, text, smileJobID, jobID, note string, now time.Time) {
	r.State, r.ResultCode, r.ResultText = Enrolled, code, text
	if smileJobID != "" {
		r.SmileJobID = smileJobID
	}
	if jobID != "" {
		r.JobID = jobID
	}
	r.Error, r.PhotoSHA256, r.OutcomeUnknown, r.UpdatedAt = note, "", false, now.UTC()
	r.answered()
}

// Refuse records Smile ID's permanent refusal of the row, with its code and
// text and the SHA-256 of the photo it refused. unknown keeps whether an
// earlier request's outcome is still unknown. It closes the job in flight
// (see InFlightJobID): a refusal that is no answer to the job (2215, the
// job_id was used before) is recorded with Fail, which keeps it.
func (r *Record) Refuse(code, text, reason, photoSHA256 string, unknown bool, now time.Time) {
	r.State, r.ResultCode, r.ResultText, r.Error = Rejected, code, text, reason
	r.PhotoSHA256, r.OutcomeUnknown, r.UpdatedAt = photoSHA256, unknown, now.UTC()
	r.answered()
}

// Invalidate rejects a row refused before sending (a bad field or photo).
func (r *Record) Invalidate(run uint64, line int, createdAt, photo, reason string, now time.Time) {
	r.Run, r.Line, r.CreatedAt, r.Photo = run, line, createdAt, photo
	r.State, r.ResultCode, r.ResultText, r.Error = Rejected, "", "", reason
	r.PhotoSHA256, r.PhotoNote, r.UpdatedAt = "", "", now.UTC()
}

// Fail records that transient failures used up the retries (or an
// interrupt came between them); the next run tries again, with the job in
// flight if there is one (its outcome is not known).
func (r *Record) Fail(reason string, unknown bool, now time.Time) {
	r.State, r.Error, r.OutcomeUnknown, r.UpdatedAt = Failed, reason, unknown, now.UTC()
}
