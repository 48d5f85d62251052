package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"bulkenroll/importer"
	"bulkenroll/importer/photosource"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Client is what the pipeline needs of Smile ID; *smileid.Client is the
// real one.
type Client interface {
	PrepareUpload(ctx context.Context, p smileid.Prepare) (*smileid.Upload, error)
	BuildAuthZip(z smileid.AuthZip) ([]byte, error)
	Upload(ctx context.Context, uploadURL string, zip []byte) error
	JobStatus(ctx context.Context, userID, jobID string) (*smileid.JobStatus, error)
}

// Options tune a verify run.
type Options struct {
	// Selection picks the users of a new run.
	Selection Selection
	// Refresh only polls jobs left pending review (and continues an
	// unfinished run); it picks no new users.
	Refresh bool
	// Workers is the number of users checked at once; default 4.
	Workers int
	// Gate admits each request (the same rate and concurrency control as
	// an import's); default a gate of Workers slots with no rate limit.
	Gate *ratelimit.Gate
	// Retries is how many times a transient failure is tried again.
	Retries int
	// BackoffBase and BackoffMax shape retry waits; defaults 500ms and 30s.
	BackoffBase, BackoffMax time.Duration
	// PollTimeout bounds the polling of one job; default 5 minutes. A job
	// not complete by then is left pending review, polled again later.
	PollTimeout time.Duration
	// PollDelay is the wait before poll number n; default smileid.PollDelay.
	PollDelay func(n int) time.Duration
	// CallbackURL is sent with each prepare request.
	CallbackURL string
	// FixPhotos converts images Smile ID would refuse before sending.
	FixPhotos bool
	// MaxPhotoBytes is the image size limit; default manifest.DefaultMaxPhotoBytes.
	MaxPhotoBytes int64
	// PhotoOpener opens remote images; default photosource's own.
	PhotoOpener *photosource.Opener
	// DryRun picks the users and says what would be sent; nothing is sent
	// or written.
	DryRun bool
	// Grace bounds how long requests in flight may finish after an
	// interrupt; default 15s.
	Grace time.Duration
	// Observer is told of the run as it goes; nil tells nobody.
	Observer Observer
	// ReportEvery is the time between the observer's progress reports;
	// default 5 seconds.
	ReportEvery time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Summary counts what a verify run checked. Checked is the number of
// users whose job reached an outcome in this run; every one of them is in
// exactly one of the four outcome counts.
type Summary struct {
	Checked          int     `json:"checked"`
	Authenticated    int     `json:"authenticated"`
	NotAuthenticated int     `json:"not_authenticated"`
	PendingReview    int     `json:"pending_review"`
	Errors           int     `json:"errors"`
	Seconds          float64 `json:"seconds"`
	// RunID is the store's number for the verify run (0 for a dry run).
	RunID uint64 `json:"-"`
	// Continued is set when the run continued an unfinished one.
	Continued bool `json:"-"`
	// Refreshed counts the jobs of earlier runs polled again.
	Refreshed int `json:"-"`
	// Skipped are the users named and not checked, with why.
	Skipped []Skip `json:"-"`
	// Left counts the jobs the run did not bring to an outcome (an
	// interrupt, a stop): the next verify continues them.
	Left int `json:"-"`
	// UsedPhoto says some selfie was the enrollment photo itself.
	UsedPhoto bool `json:"-"`
	// Planned lists what a dry run would send.
	Planned []Planned `json:"-"`
	// Requests counts the requests sent, by answer class.
	Requests map[string]int64 `json:"-"`
	// DryRun marks a run that sent nothing.
	DryRun bool `json:"-"`
}

// Planned is a user a dry run would check.
type Planned struct {
	UserID, Selfie string
	FromPhoto      bool
	Frames         int
}

// OK reports whether every user checked authenticated.
func (s Summary) OK() bool {
	return s.NotAuthenticated == 0 && s.PendingReview == 0 && s.Errors == 0 && s.Left == 0
}

// JobID derives a job's partner job ID from its verify run and user: the
// run's nonce and number, and a hash of the user_id (user_ids may be long
// or hold any character).
func JobID(run store.VerifyRun, userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return fmt.Sprintf("bulkenroll-verify-%s-%d-%s", run.Nonce, run.ID, hex.EncodeToString(sum[:8]))
}

// AccountError stops a verify run: Smile ID refused the account (2205,
// 2214, 2220) or the answers are not Smile ID's.
type AccountError = importer.AccountError

// ErrInterrupted is returned when a signal stopped the run.
var ErrInterrupted = importer.ErrInterrupted

// recordBatch bounds the new jobs recorded in one commit.
const recordBatch = 10000

// task is one job to bring forward, with the manifest row of its user
// (nil when it only needs polling).
type task struct {
	job  store.VerifyJob
	cand *candidate
}

// runner is one verify run in progress.
type runner struct {
	opts   Options
	st     *store.Store
	cl     Client
	photos *photoReader
	run    store.VerifyRun

	ctx    context.Context
	cancel context.CancelCauseFunc
	reqCtx context.Context

	total                       int
	mu                          sync.Mutex
	auth, notAuth, pending, bad int
	left                        atomic.Int64
	requests                    sync.Map // class -> *atomic.Int64
}

// Run runs a verify: it continues the last unfinished verify run if there
// is one, polls again the jobs left pending review, and (unless Refresh, or
// a run is continued) checks the users of opts.Selection. st is needed
// (opened read-only for a dry run). The error is nil when every job it took
// on reached an outcome; *AccountError, *smileid.ForeignAnswerError,
// ErrInterrupted or a store or manifest failure otherwise. The summary is
// valid in every case.
func Run(ctx context.Context, rd *manifest.Reader, st *store.Store, cl Client, opts Options) (Summary, error) {
	opts = withDefaults(opts)
	start := opts.Now()
	sum := Summary{DryRun: opts.DryRun}

	// What is left of earlier runs: the last one if unfinished, and jobs
	// pending review.
	last, found, err := st.LastVerifyRun()
	if err != nil {
		return sum, err
	}
	continuing := found && last.Unfinished()
	var resume []store.VerifyJob
	need := map[string]bool{}
	exclude := map[string]bool{}
	if err := st.EachVerifyJob(0, func(j store.VerifyJob) error {
		switch {
		case j.Step != store.JobDone:
			// The last run's unfinished jobs, and any job an earlier run
			// left mid-way: continued, never prepared anew.
			resume = append(resume, j)
			need[j.UserID] = true
			exclude[j.UserID] = true
		case j.Outcome == string(smileid.PendingReview):
			j.Step = store.JobUploaded // polled, never sent again
			resume = append(resume, j)
			exclude[j.UserID] = true
		}
		return nil
	}); err != nil {
		return sum, err
	}
	var sel *Selection
	if !continuing && !opts.Refresh {
		sel = &opts.Selection
	}
	sr, err := scan(rd, st, sel, exclude, need)
	if err != nil {
		return sum, err
	}
	if ctx.Err() != nil {
		return sum, ErrInterrupted // before anything was recorded or sent
	}
	sum.Skipped, sum.UsedPhoto, sum.Continued = sr.skips, sr.usedPhoto, continuing
	if opts.DryRun {
		for _, c := range sr.picked {
			sum.Planned = append(sum.Planned, Planned{UserID: c.UserID, Selfie: c.SelfieShown, FromPhoto: c.FromPhoto, Frames: len(c.Liveness)})
		}
		for _, j := range resume {
			sum.Planned = append(sum.Planned, Planned{UserID: j.UserID, Selfie: "(" + j.Step + " job " + j.JobID + ")"})
		}
		sum.Seconds = opts.Now().Sub(start).Seconds()
		return sum, nil
	}

	r := &runner{opts: opts, st: st, cl: cl,
		photos: &photoReader{opener: opts.PhotoOpener, max: opts.MaxPhotoBytes, fix: opts.FixPhotos}}
	if continuing {
		r.run = last
		r.run.Outcome, r.run.Ended = "running", time.Time{}
		if err := st.EndVerifyRun(r.run); err != nil {
			return sum, err
		}
	} else if r.run, err = st.BeginVerifyRun(opts.Selection.String(), start); err != nil {
		return sum, err
	}
	sum.RunID = r.run.ID

	var tasks []task
	for _, j := range resume {
		t := task{job: j}
		if c, ok := sr.rows[j.UserID]; ok {
			t.cand = &c
		}
		if j.RunID != r.run.ID {
			sum.Refreshed++
		}
		tasks = append(tasks, t)
	}
	// The new jobs' IDs are recorded, durably, before any is prepared.
	var fresh []store.VerifyJob
	for i := range sr.picked {
		c := sr.picked[i]
		j := store.VerifyJob{RunID: r.run.ID, UserID: c.UserID, JobID: JobID(r.run, c.UserID), Step: store.JobSelected, UpdatedAt: start.UTC()}
		fresh = append(fresh, j)
		tasks = append(tasks, task{job: j, cand: &c})
	}
	for len(fresh) > 0 {
		n := min(len(fresh), recordBatch)
		if err := st.PutVerifyJobs(fresh[:n]); err != nil {
			return sum, err
		}
		fresh = fresh[n:]
	}
	sort.SliceStable(tasks, func(a, b int) bool { return tasks[a].job.Step > tasks[b].job.Step }) // uploaded jobs first: they only poll

	r.total = len(tasks)
	stopReports := r.report()
	runErr := r.work(ctx, tasks)
	stopReports()
	r.mu.Lock()
	sum.Authenticated, sum.NotAuthenticated, sum.PendingReview, sum.Errors = r.auth, r.notAuth, r.pending, r.bad
	r.mu.Unlock()
	sum.Checked = sum.Authenticated + sum.NotAuthenticated + sum.PendingReview + sum.Errors
	sum.Left = int(r.left.Load())
	open := 0
	if err := st.EachVerifyJob(0, func(j store.VerifyJob) error {
		if j.Step != store.JobDone {
			open++
		}
		return nil
	}); err != nil && runErr == nil {
		runErr = err
	}
	sum.Requests = r.requestCounts()
	sum.Seconds = opts.Now().Sub(start).Seconds()

	r.run.Ended = opts.Now().UTC()
	r.run.Outcome = importer.Outcome(runErr)
	if runErr == nil && open > 0 {
		r.run.Outcome = "incomplete" // jobs left mid-way: the next verify continues them
	}
	r.run.Counts = map[string]int{"checked": sum.Checked, "authenticated": sum.Authenticated,
		"not_authenticated": sum.NotAuthenticated, "pending_review": sum.PendingReview, "errors": sum.Errors, "left": sum.Left}
	if err := st.EndVerifyRun(r.run); err != nil && runErr == nil {
		runErr = err
	}
	if opts.Observer != nil {
		opts.Observer.Finish(sum, runErr)
	}
	return sum, runErr
}

func withDefaults(o Options) Options {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = ratelimit.DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = ratelimit.DefaultBackoffMax
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = 5 * time.Minute
	}
	if o.PollDelay == nil {
		o.PollDelay = smileid.PollDelay
	}
	if o.MaxPhotoBytes <= 0 {
		o.MaxPhotoBytes = manifest.DefaultMaxPhotoBytes
	}
	if o.PhotoOpener == nil {
		o.PhotoOpener = photosource.New(photosource.Options{MaxBytes: max(o.MaxPhotoBytes, maxFixInput)})
	}
	if o.Gate == nil {
		o.Gate = ratelimit.New(ratelimit.Config{Workers: o.Workers})
	}
	if o.Grace <= 0 {
		o.Grace = importer.DefaultGrace
	}
	if o.ReportEvery <= 0 {
		o.ReportEvery = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Selection.Sample <= 0 {
		o.Selection.Sample = DefaultSample
	}
	return o
}

// work runs the tasks on the pool until they are done or the run stops.
func (r *runner) work(ctx context.Context, tasks []task) error {
	var release func()
	r.ctx, r.cancel, r.reqCtx, release = importer.WithGrace(ctx, r.opts.Grace, 2*time.Second)
	defer release()

	ch := make(chan task)
	var g errgroup.Group
	for range min(r.opts.Workers, max(1, len(tasks))) {
		g.Go(func() error {
			for t := range ch {
				r.do(t)
			}
			return nil // a job's failure is its outcome, not the pool's error
		})
	}
send:
	for i, t := range tasks {
		select {
		case ch <- t:
		case <-r.ctx.Done():
			r.left.Add(int64(len(tasks) - i))
			break send
		}
	}
	close(ch)
	_ = g.Wait()
	return importer.StopCause(r.ctx)
}

// progress returns the counts so far, for observers.
func (r *runner) progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Progress{Total: r.total, Authenticated: r.auth, NotAuthenticated: r.notAuth, PendingReview: r.pending, Errors: r.bad,
		Left: int(r.left.Load()), Requests: r.requestCounts(), RunID: r.run.ID}
}

// report tells the observer the progress now and every ReportEvery,
// until the returned stop is called.
func (r *runner) report() (stop func()) {
	if r.opts.Observer == nil {
		return func() {}
	}
	r.opts.Observer.Progress(r.progress())
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.opts.ReportEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.opts.Observer.Progress(r.progress())
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// countRequest counts one request by its answer class.
func (r *runner) countRequest(err error) {
	class := smileid.AnswerClass(err)
	if err == nil {
		class = "ok"
	}
	v, _ := r.requests.LoadOrStore(class, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (r *runner) requestCounts() map[string]int64 {
	m := map[string]int64{}
	r.requests.Range(func(k, v any) bool {
		m[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}
