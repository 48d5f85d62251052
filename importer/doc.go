// Package importer is the pipeline of a bulk import: it reads manifest rows
// (dispatch.go), plans each against the store (plan.go), admits requests
// through the rate gate, sends them with the Smile ID client and decides what
// each answer means (worker.go, decide.go, photo.go), settles each row's
// outcome in the store (settle.go), and drains at the end or on a signal
// (drain.go); run.go sets a run up and ends it. Its settings (options.go),
// its result (summary.go) and its own errors (errors.go: AccountError,
// ErrInterrupted, Outcome; OutageError is the gate's) are here too.
//
// It tells what happens as events (package event) to the observers the
// command gives it in Options; it must not import the presentation
// (importer/observe): it draws no progress, writes no logs, rejects file or
// metrics, and words nothing for a display.
package importer
