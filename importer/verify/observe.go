package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"bulkenroll/importer"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Progress are a verify run's counts so far.
type Progress struct {
	RunID                                                  uint64
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

// Observer is told of a verify run as it goes: the progress lines and the
// JSON log are observers. Job is called from the workers.
type Observer interface {
	// Start gives the number of jobs and a function returning the counts.
	Start(total int, progress func() Progress)
	// Job tells of one job that reached an outcome.
	Job(j store.VerifyJob)
	// Finish gives the summary and the run's error.
	Finish(s Summary, err error)
}

// NewTextObserver writes a progress line to w every interval (never, for
// a zero interval) and a line for each user not authenticated.
func NewTextObserver(w io.Writer, interval time.Duration) Observer {
	return &textObserver{w: w, interval: interval}
}

type textObserver struct {
	w        io.Writer
	interval time.Duration
	mu       sync.Mutex
	total    int
	stop     func()
}

func (o *textObserver) Start(total int, progress func() Progress) {
	o.total = total
	if o.interval > 0 {
		o.stop = importer.Every(o.interval, func() {
			p := progress()
			o.mu.Lock()
			defer o.mu.Unlock()
			fmt.Fprintf(o.w, "bulkenroll: verify %d/%d checked · authenticated %d · not authenticated %d · pending review %d · errors %d\n",
				p.Checked(), o.total, p.Authenticated, p.NotAuthenticated, p.PendingReview, p.Errors)
		})
	}
}

func (o *textObserver) Job(j store.VerifyJob) {
	if j.Outcome == "authenticated" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s: %s: %s\n", manifest.DisplayID(j.UserID), j.Outcome, j.Reason)
}

func (o *textObserver) Finish(Summary, error) {
	if o.stop != nil {
		o.stop()
	}
}

// NewLogObserver logs with l (one JSON object a line with a JSON handler):
// a "progress" record every interval, a "user" record for each job that
// reached an outcome, and a "summary" record at the end.
func NewLogObserver(l *slog.Logger, interval time.Duration) Observer {
	return &logObserver{log: l, interval: interval}
}

type logObserver struct {
	log      *slog.Logger
	interval time.Duration
	stop     func()
}

func (o *logObserver) Start(total int, progress func() Progress) {
	if o.interval <= 0 {
		return
	}
	o.stop = importer.Every(o.interval, func() {
		p := progress()
		o.log.LogAttrs(context.Background(), slog.LevelInfo, "progress", slog.Uint64("verify_run", p.RunID),
			slog.Int("total", total), slog.Int("checked", p.Checked()), slog.Int("authenticated", p.Authenticated),
			slog.Int("not_authenticated", p.NotAuthenticated), slog.Int("pending_review", p.PendingReview), slog.Int("errors", p.Errors))
	})
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
	if o.stop != nil {
		o.stop()
	}
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
