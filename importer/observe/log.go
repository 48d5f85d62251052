package observe

import (
	"context"
	"log/slog"
	"math"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// NewLogObserver returns an event.Observer that logs a run to l, for log
// collectors (with slog.NewJSONHandler: one JSON object per line): a "row"
// record at level WARN for each rejected or failed row (line, user_id,
// state, code, reason), a "progress" record every interval (default
// DefaultReportEvery, the text progress line's cadence) with the run's
// figures (those of the progress line: rows/s of settled rows, rate,
// learned quota, requests in flight, window, what holds the run back), and
// a "summary" record when the run ends (level ERROR when it ended early for
// another reason than a signal). It never logs credentials: nothing it is
// given holds them.
func NewLogObserver(l *slog.Logger, interval time.Duration) event.Observer {
	if interval <= 0 {
		interval = DefaultReportEvery
	}
	return &logObserver{log: l, interval: interval}
}

type logObserver struct {
	log      *slog.Logger
	interval time.Duration
	progress periodic // the progress records
}

// Start logs progress every interval until Finish.
func (o *logObserver) Start(stats func() event.Stats) {
	o.progress.start(o.interval, func() {
		o.log.LogAttrs(context.Background(), slog.LevelInfo, "progress", statsAttrs(stats())...)
	})
}

// Row logs a rejected or failed row; other rows are counted in progress.
func (o *logObserver) Row(ev event.RowEvent) {
	if ev.State != store.Rejected && ev.State != store.Failed {
		return
	}
	o.log.LogAttrs(context.Background(), slog.LevelWarn, "row",
		slog.Int("line", ev.Row.Line),
		slog.String("user_id", ev.Row.UserID),
		slog.String("state", string(ev.State)),
		slog.String("code", ev.Code),
		slog.String("reason", ev.Reason))
}

// Finish stops the progress records and logs the summary.
func (o *logObserver) Finish(final event.Stats, err error) {
	o.progress.end()
	level, outcome := slog.LevelInfo, outcomeOf(final, err)
	switch outcome {
	case event.Finished, event.Interrupted:
	case event.Failed:
		level, outcome = slog.LevelError, OutcomeError // as the metrics name it
	default:
		level = slog.LevelError
	}
	attrs := append(statsAttrs(final), slog.String("outcome", outcome),
		slog.Float64("seconds", final.Now.Sub(final.Started).Seconds()))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	o.log.LogAttrs(context.Background(), level, "summary", attrs...)
}

// statsAttrs are the figures of progress and summary records.
func statsAttrs(s event.Stats) []slog.Attr {
	attrs := []slog.Attr{
		slog.Uint64("run_id", s.RunID),
		slog.Int64("rows", s.Rows),
	}
	if s.Total >= 0 {
		attrs = append(attrs, slog.Int64("total", s.Total))
	}
	attrs = append(attrs,
		slog.Int64("enrolled", s.Enrolled),
		slog.Int64("skipped", s.Skipped),
		slog.Int64("rejected", s.Rejected),
		slog.Int64("failed", s.Failed),
		slog.Int64("pending", s.Pending),
		slog.Float64("rows_per_second", round2(s.RowsPerSecond())),
		slog.Float64("rate", round2(s.Rate)),
		slog.Float64("learned_rate", round2(s.LearnedRate)),
		slog.Int64("in_flight", s.InFlight),
		slog.Int("window", s.Window),
		slog.Float64("eta_seconds", s.ETA().Seconds()),
		slog.Int64("throttled", s.Requests[smileid.AnswerThrottled]),
	)
	if s.Limiter != event.LimitNone {
		attrs = append(attrs, slog.String("limiter", string(s.Limiter)), slog.String("hint", Hint(s.Control)))
	}
	if !s.DownSince.IsZero() {
		attrs = append(attrs, slog.Time("down_since", s.DownSince))
	}
	if !s.LastSuccess.IsZero() {
		attrs = append(attrs, slog.Time("last_success", s.LastSuccess))
	}
	if s.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true))
	}
	return attrs
}

// round2 rounds f to two decimals, for readable logs.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
