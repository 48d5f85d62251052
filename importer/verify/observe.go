package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"bulkenroll/importer"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Progress are a verify run's counts so far.
type Progress struct {
	RunID uint64
	// Total is the number of jobs the run took on.
	Total                                                  int
	Authenticated, NotAuthenticated, PendingReview, Errors int
	// Left counts the jobs a stop left at their step.
	Left int
	// Requests counts the requests sent, by answer class ("ok" for a success).
	Requests map[string]int64
}

// Checked is the number of jobs that reached an outcome.
func (p Progress) Checked() int {
	return p.Authenticated + p.NotAuthenticated + p.PendingReview + p.Errors
}

// Observer is told of a verify run as it goes: the progress lines, the
// JSON log and the metrics file are observers. The run calls Progress
// every Options.ReportEvery; Job is called from the workers.
type Observer interface {
	// Progress gives the counts: once at the start, then every ReportEvery.
	Progress(p Progress)
	// Job tells of one job that reached an outcome.
	Job(j store.VerifyJob)
	// Finish gives the summary and the run's error.
	Finish(s Summary, err error)
}

// Observers tells several observers of the same run.
type Observers []Observer

// Progress tells each.
func (o Observers) Progress(p Progress) {
	for _, x := range o {
		x.Progress(p)
	}
}

// Job tells each.
func (o Observers) Job(j store.VerifyJob) {
	for _, x := range o {
		x.Job(j)
	}
}

// Finish finishes each.
func (o Observers) Finish(s Summary, err error) {
	for _, x := range o {
		x.Finish(s, err)
	}
}

// NewTextObserver writes a progress line to w at each Progress but the
// first (none when quiet) and a line for each user not authenticated.
func NewTextObserver(w io.Writer, quiet bool) Observer {
	return &textObserver{w: w, quiet: quiet}
}

type textObserver struct {
	w       io.Writer
	quiet   bool
	mu      sync.Mutex
	started bool
}

func (o *textObserver) Progress(p Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.quiet || !o.started {
		o.started = true
		return
	}
	fmt.Fprintf(o.w, "bulkenroll: verify %d/%d checked · authenticated %d · not authenticated %d · pending review %d · errors %d\n",
		p.Checked(), p.Total, p.Authenticated, p.NotAuthenticated, p.PendingReview, p.Errors)
}

func (o *textObserver) Job(j store.VerifyJob) {
	if j.Outcome == "authenticated" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s: %s: %s\n", manifest.DisplayID(j.UserID), j.Outcome, j.Reason)
}

func (o *textObserver) Finish(Summary, error) {}

// NewLogObserver logs with l (one JSON object a line with a JSON handler):
// a "progress" record at each Progress (none when quiet), a "user" record
// for each job that reached an outcome, and a "summary" record at the end.
func NewLogObserver(l *slog.Logger, quiet bool) Observer {
	return &logObserver{log: l, quiet: quiet}
}

type logObserver struct {
	log   *slog.Logger
	quiet bool
}

func (o *logObserver) Progress(p Progress) {
	if o.quiet {
		return
	}
	o.log.LogAttrs(context.Background(), slog.LevelInfo, "progress", slog.Uint64("verify_run", p.RunID),
		slog.Int("total", p.Total), slog.Int("checked", p.Checked()), slog.Int("authenticated", p.Authenticated),
		slog.Int("not_authenticated", p.NotAuthenticated), slog.Int("pending_review", p.PendingReview), slog.Int("errors", p.Errors))
}

func (o *logObserver) Job(j store.VerifyJob) {
	level := slog.LevelInfo
	if j.Outcome != "authenticated" {
		level = slog.LevelWarn
	}
	o.log.LogAttrs(context.Background(), level, "user", slog.String("user_id", j.UserID), slog.String("job_id", j.JobID),
		slog.String("smile_job_id", j.SmileJobID), slog.String("outcome", j.Outcome), slog.String("result_code", j.ResultCode),
		slog.String("result_text", j.ResultText), slog.String("reason", j.Reason))
}

func (o *logObserver) Finish(s Summary, err error) {
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.Uint64("verify_run", s.RunID), slog.Int("checked", s.Checked), slog.Int("authenticated", s.Authenticated),
		slog.Int("not_authenticated", s.NotAuthenticated), slog.Int("pending_review", s.PendingReview), slog.Int("errors", s.Errors),
		slog.Int("left", s.Left), slog.Float64("seconds", s.Seconds), slog.String("outcome", importer.Outcome(err))}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if importer.Outcome(err) != "interrupted" {
			level = slog.LevelError
		}
	}
	o.log.LogAttrs(context.Background(), level, "summary", attrs...)
}
