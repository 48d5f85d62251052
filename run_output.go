package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/store"
)

// runOutput is how a run is shown and recorded beside the store: the
// observers the pipeline tells, in order (the progress display, the rejects
// file, the JSON log, the live status file, the metrics), and what the
// command needs of them once the run is over.
type runOutput struct {
	observers []event.Observer
	// log is the JSON log; nil with text output.
	log *slog.Logger
	// metrics publishes Prometheus metrics; nil without --metrics-file or --metrics-addr.
	metrics *observe.MetricsFile
	// closers end what the output opened (files, the metrics server), last first.
	closers []func()
}

// output opens what shows the run: the progress display or the JSON log
// on standard error, the rejects file, the live status file next to the
// store (st nil or a dry run: none) and the metrics. Close it when the run
// is over.
func (o runOptions) output(ctx context.Context, st *store.Store) (out *runOutput, err error) {
	out = &runOutput{}
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	every := observe.DefaultReportEvery
	if o.NoProgress {
		every = 1<<63 - 1 // no periodic lines; problems and the summary still print
	}
	if o.LogFormat != "json" {
		bar := o.ErrTTY && !o.NoProgress
		out.observers = append(out.observers, observe.NewProgress(o.Err, bar, every))
	}
	if o.Rejects != "" {
		f, err := os.OpenFile(o.Rejects, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return out, fmt.Errorf("rejects file: %w", err)
		}
		out.closers = append(out.closers, func() { f.Close() })
		_ = f.Chmod(0o600) // it names users; an older file keeps no looser mode
		out.observers = append(out.observers, observe.NewRejects(f))
	}
	if o.LogFormat == "json" {
		// One JSON object a line on standard error: rows, progress, summary.
		out.log = slog.New(slog.NewJSONHandler(o.Err, nil))
		out.observers = append(out.observers, observe.NewLogObserver(out.log, every))
	}
	if st != nil && !o.Import.DryRun {
		out.observers = append(out.observers, observe.NewLiveFile(st.Path(), o.Manifest, o.Import.Shard.String(), 0))
	}
	if o.MetricsFile != "" || o.MetricsAddr != "" {
		labels := map[string]string{}
		if !o.Import.Shard.IsZero() {
			labels["shard"] = o.Import.Shard.String()
		}
		out.metrics = observe.NewMetricsFile(o.MetricsFile, 0, labels)
		if o.MetricsAddr != "" {
			mctx, stop := context.WithCancel(ctx)
			out.closers = append(out.closers, stop)
			if _, err := out.metrics.Serve(mctx, o.MetricsAddr); err != nil {
				return out, &usageError{err.Error()} // it names the flag and the address
			}
		}
		out.observers = append(out.observers, out.metrics)
	}
	return out, nil
}

// warnMetrics tells, on the run's log or standard error, that the metrics
// file could not be written (which does not fail a run).
func (out *runOutput) warnMetrics(o runOptions) {
	if out.metrics == nil {
		return
	}
	merr := out.metrics.Err()
	if merr == nil {
		return
	}
	if out.log != nil {
		out.log.Warn("writing the metrics file", "error", merr.Error())
	} else {
		fmt.Fprintf(o.Err, "bulkenroll: writing the metrics file: %v\n", merr)
	}
}

// close ends what output opened, last first.
func (out *runOutput) close() {
	for i := len(out.closers) - 1; i >= 0; i-- {
		out.closers[i]()
	}
	out.closers = nil
}
