package importer

import (
	"sync/atomic"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// liveStats are the run's counters, updated by every stage and read by the
// observers through snapshot.
type liveStats struct {
	runID   uint64
	started time.Time
	dry     bool
	now     func() time.Time
	total   atomic.Int64 // -1 until counted

	rows, enrolled, skipped, rejected, failed, pending atomic.Int64
	// unsaved counts the rows settled whose record the store could not
	// commit (counted pending too); unsavedAnswers those of them that held
	// an answer from Smile ID.
	unsaved, unsavedAnswers atomic.Int64
	requests                []atomic.Int64 // by answerIndex
	lastSuccess             atomic.Int64   // unix nanoseconds, 0: none

	// control returns the state of the rate and concurrency control; set
	// once before the run starts.
	control func() event.Control
}

// answerIndex numbers the answer classes for the counters.
var answerIndex = func() map[string]int {
	m := make(map[string]int, len(smileid.AnswerClasses))
	for i, c := range smileid.AnswerClasses {
		m[c] = i
	}
	return m
}()

func newLiveStats(started time.Time, dry bool, now func() time.Time) *liveStats {
	l := &liveStats{started: started, dry: dry, now: now, requests: make([]atomic.Int64, len(smileid.AnswerClasses))}
	l.total.Store(-1)
	return l
}

// count adds one row in state st.
func (l *liveStats) count(st store.State) {
	switch st {
	case store.Enrolled:
		l.enrolled.Add(1)
	case store.Rejected:
		l.rejected.Add(1)
	case store.Failed:
		l.failed.Add(1)
	default:
		l.pending.Add(1)
	}
}

// answer counts one request's answer class.
func (l *liveStats) answer(class string) {
	l.requests[answerIndex[class]].Add(1)
	if class == smileid.AnswerEnrolled || class == smileid.AnswerAlreadyEnrolled {
		l.lastSuccess.Store(l.now().UnixNano())
	}
}

// snapshot returns the figures as they stand.
func (l *liveStats) snapshot() event.Stats {
	s := event.Stats{
		RunID: l.runID, Started: l.started, Now: l.now(), Total: l.total.Load(), DryRun: l.dry,
		Rows: l.rows.Load(), Enrolled: l.enrolled.Load(), Skipped: l.skipped.Load(),
		Rejected: l.rejected.Load(), Failed: l.failed.Load(), Pending: l.pending.Load(),
		Unsaved: l.unsaved.Load(), UnsavedAnswers: l.unsavedAnswers.Load(),
		Requests: make(map[string]int64, len(smileid.AnswerClasses)),
	}
	for i, c := range smileid.AnswerClasses {
		s.Requests[c] = l.requests[i].Load()
	}
	if ns := l.lastSuccess.Load(); ns != 0 {
		s.LastSuccess = time.Unix(0, ns)
	}
	if l.control != nil {
		s.Control = l.control()
	}
	return s
}
