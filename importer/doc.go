// Package importer is the pipeline of a bulk import: it reads manifest rows,
// plans each against the store, admits requests through the rate gate, sends
// them with the Smile ID client, settles each row's outcome in the store, and
// drains at the end or on a signal. It reports what happens as events to
// Observers; it does not draw progress, write logs or export metrics itself.
package importer
