// Package observe shows a run and records it beside the store: the progress
// bar or report lines (Progress), the JSON log (NewLogObserver), the live
// status file that `status` reads (NewLiveFile), the rejects CSV (Rejects)
// and the Prometheus metrics (MetricsFile), each an event.Observer, with the
// words every display shares (Hint, ControlText, LearnedText). It is the
// only package that imports the progress-bar and Prometheus libraries.
//
// It knows a run only by its events (package event) and, of the Smile ID
// client, only the answer classes it counts requests by: it must not import
// the pipeline (importer) or the rate gate, and it decides nothing about
// rows. The command wires it into the pipeline.
package observe
