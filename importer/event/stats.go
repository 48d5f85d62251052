package event

import "time"

// Stats are a run's live figures, as observers see them. Every row read is
// counted in exactly one of Enrolled, Skipped, Rejected, Failed and Pending
// once it is settled (a row whose record is saved, once the store has
// committed it); Rows counts the rows read so far.
type Stats struct {
	// RunID is the store's number for the run (0 for a dry run).
	RunID uint64
	// Started is when the run began.
	Started time.Time
	// Now is when these figures were taken.
	Now time.Time
	// Total is the number of rows in the manifest, or -1 while unknown
	// (always unknown for a pipe).
	Total int64
	// Rows counts the manifest rows read.
	Rows int64
	// Enrolled, Skipped, Rejected, Failed and Pending count rows by how they
	// ended in this run (Skipped: found enrolled by an earlier run).
	Enrolled, Skipped, Rejected, Failed, Pending int64
	// Unsaved counts the rows (among Pending) whose result the store could
	// not commit; UnsavedAnswers those of them that held an answer from
	// Smile ID (the next run resolves them).
	Unsaved, UnsavedAnswers int64
	// EndNotRecorded, in the final figures, says why the store could not
	// record the run's end ("": it did, or nothing was to record).
	EndNotRecorded string
	// Outcome, in the final figures, is how the run ended, as the run
	// history records it: Finished, Interrupted, Stopped or Failed ("":
	// the run goes on).
	Outcome string
	// Requests counts the requests sent, by answer class (see
	// smileid.AnswerClasses).
	Requests map[string]int64
	// Control is the state of the rate and concurrency control.
	Control
	// LastSuccess is when the last enrollment was confirmed (zero: none yet).
	LastSuccess time.Time
	// DryRun marks a run that sends nothing.
	DryRun bool
}

// Settled is the number of rows this run brought to an end: enrolled,
// rejected or failed (in a dry run also the rows it would send, which it
// counts as pending). Skipped rows cost nothing, and rows read are not done
// until they settle.
func (s Stats) Settled() int64 {
	n := s.Enrolled + s.Rejected + s.Failed
	if s.DryRun {
		n += s.Pending
	}
	return n
}

// RowsPerSecond is the speed of settled rows since the start: the figure
// every display shows.
func (s Stats) RowsPerSecond() float64 {
	el := s.Now.Sub(s.Started).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(s.Settled()) / el
}

// ETA estimates the time left to settle the rows not settled yet, at
// RowsPerSecond, or 0 when it cannot be told.
func (s Stats) ETA() time.Duration {
	r := s.RowsPerSecond()
	left := s.Total - s.Skipped - s.Settled()
	if !s.DryRun {
		left -= s.Pending // left undone by an early stop: not to be done by this run
	}
	if s.Total < 0 || left <= 0 || r <= 0 {
		return 0
	}
	return time.Duration(float64(left) / r * float64(time.Second)).Round(time.Second)
}
