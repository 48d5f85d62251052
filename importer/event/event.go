// Package event holds what the pipeline tells its observers and what they
// show: the run's figures (Stats, with the gate's Control), the settled rows
// (RowEvent), the Observer and Flusher interfaces, and the names of how a
// run ended. It is the leaf that both the pipeline (importer) and the
// presentation (importer/observe) import, so that neither imports the
// other: it holds data and interfaces only, imports nothing but the types
// its events carry (manifest rows, store states, ratelimit's Control), and
// words nothing for people.
package event

import (
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// RowEvent is one row settled by a run: rejected, failed, enrolled, or left
// pending by an early stop or a store that could not save it (Skipped rows
// are counted, not reported). A row whose record is saved is told once the
// store has committed it.
type RowEvent struct {
	// Row is the manifest row.
	Row manifest.Row
	// State is how the row ended in this run.
	State store.State
	// Code is Smile ID's code, or "" for a row refused before sending.
	Code string
	// Reason says why a row was rejected or failed, or notes how it enrolled.
	Reason string
}

// Observer is told about a run as it goes: the progress display, the
// rejects file, JSON logs, metrics and the live status file are observers,
// so the pipeline does not know how it is shown. Row is called from many
// goroutines (the store's writer among them: it must not block for long);
// Start comes before every Row and Finish after every Row.
type Observer interface {
	// Start gives the observer a function that returns the live figures;
	// an observer that reports periodically calls it on its own schedule.
	Start(stats func() Stats)
	// Row tells of one settled row.
	Row(ev RowEvent)
	// Finish gives the final figures, with their Outcome, and the run's
	// error (nil: finished).
	Finish(final Stats, err error)
}

// Flusher is an Observer that holds output to write out when the rows are
// done (a file written as rows come); the pipeline calls Flush before it
// records the run's end, and a failure becomes the run's error (so the run
// history says the run failed). Flush's error names what it was writing.
type Flusher interface {
	Flush() error
}

// How a run ended (Stats.Outcome), as the run history records it.
const (
	Finished    = "finished"    // every row read was settled
	Interrupted = "interrupted" // a signal stopped it
	Stopped     = "stopped"     // Smile ID refused the account, the answers were not Smile ID's, or an outage outlasted its limit
	Failed      = "failed"      // anything else that ended it early (the store, the manifest)
)
