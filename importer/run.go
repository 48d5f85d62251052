package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"bulkenroll/importer/photosource"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// The run is split by stage, one file each: run.go sets it up and ends it,
// dispatch.go reads and marks rows, plan.go decides what a row needs,
// worker.go sends and decides what an answer means, settle.go is the one
// place that saves a row's state and counts it, drain.go counts the rows an
// early stop left unread.

// ErrInterrupted is returned when a signal stopped the run (exit code 130).
var ErrInterrupted = errors.New("interrupted")

// AccountError stops a run: Smile ID refused the account itself (2205, 2214,
// 2220), or the answers show the credentials or base URL are wrong (a
// redirect, a bare 401/403). Rows not done keep the state they had.
type AccountError struct {
	API *smileid.APIError
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("stopped: %v: %s", e.API, smileid.AccountAdvice(e.API.Code))
}

// Unwrap returns the API error.
func (e *AccountError) Unwrap() error { return e.API }

// Submitter sends one user; *Client is the real one.
type Submitter interface {
	Submit(ctx context.Context, u smileid.User) (*smileid.Result, error)
}

// Options tune a run.
type Options struct {
	// Workers is the number of concurrent requests (a fixed pool);
	// default 4. With AutoWorkers it is ignored.
	Workers int
	// AutoWorkers makes the number of requests in flight follow what the
	// rate needs (rate × recent answer time, with headroom), between 1 and
	// MaxWorkers.
	AutoWorkers bool
	// MaxWorkers bounds the pool of AutoWorkers; default 256.
	MaxWorkers int
	// OutageLimit stops the run (an *OutageError) when the service has not
	// answered for this long; default 15 minutes.
	OutageLimit time.Duration
	// ThrottleLimit bounds how long one row may be throttled (HTTP 429)
	// before it fails; default 10 minutes.
	ThrottleLimit time.Duration
	// Rate is a fixed limit in requests per second over all workers; 0
	// means no limit unless RateAuto is set.
	Rate float64
	// RateAuto discovers the API's quota while running (additive increase,
	// multiplicative decrease on 429), from StartRate (or just below
	// LearnedRate) up to MaxRate.
	RateAuto bool
	// StartRate, MaxRate and LearnedRate shape the adaptive rate (defaults
	// 10/s, 50/s, none).
	StartRate, MaxRate, LearnedRate float64
	// PhotoHTTPClient fetches photos given as https URLs (tests); default
	// photosource's own.
	PhotoHTTPClient *http.Client
	// FixPhotos converts photos Smile ID would refuse (too large, WebP, GIF,
	// BMP, TIFF, rotated by EXIF) into JPEGs under the limit before sending.
	FixPhotos bool
	// Retries is how many times a transient failure is tried again.
	Retries int
	// MaxPhotoBytes is the photo size limit; default manifest.DefaultMaxPhotoBytes.
	MaxPhotoBytes int64
	// RetryRejected sends rows Smile ID refused before even if their photo is unchanged.
	RetryRejected bool
	// DryRun validates and plans but sends nothing and writes nothing.
	DryRun bool
	// Manifest names the manifest in the run history.
	Manifest string
	// ManifestIsFile says the manifest is a regular file: after an early
	// stop its unread rows are counted. Rows of a pipe or terminal are never
	// waited for once the run stops.
	ManifestIsFile bool
	// Shard, when set, limits the run to the rows whose user_id is in it.
	Shard manifest.Shard
	// Count, when set, counts the manifest's rows for the ETA; it is called
	// once, concurrently with the run (only ever for a regular file).
	Count func() (int, error)
	// Rejects, when set, receives the CSV of rows rejected in this run.
	Rejects io.Writer
	// Progress shows the run; nil shows nothing.
	Progress *Progress
	// Observers are told of the run as it goes (logs, metrics, status).
	Observers []Observer
	// Grace bounds how long requests in flight may finish after an interrupt; default 15s.
	Grace time.Duration
	// StopGrace bounds how long requests in flight may finish after the run
	// stops on an account-level refusal or a foreign answer; default 2s.
	StopGrace time.Duration
	// BackoffBase and BackoffMax shape retry waits; defaults 500ms and 30s.
	BackoffBase, BackoffMax time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Summary counts what a run did with the manifest's rows. Every row read is
// in exactly one of Enrolled, Skipped, Rejected, Failed and Pending.
type Summary struct {
	Rows     int     `json:"rows"`
	Enrolled int     `json:"enrolled"`
	Skipped  int     `json:"skipped"`
	Rejected int     `json:"rejected"`
	Failed   int     `json:"failed"`
	Pending  int     `json:"pending"`
	Seconds  float64 `json:"seconds"`
	// Unsaved counts the rows (among Pending) whose result the store could
	// not save; UnsavedAnswers those of them that held an answer from Smile
	// ID. Both are 0 unless the store failed.
	Unsaved        int `json:"-"`
	UnsavedAnswers int `json:"-"`
	// RunID is the store's number for this run (0 for a dry run).
	RunID uint64 `json:"-"`
	// DryRun marks a run that sent nothing; Pending then counts the rows it would send.
	DryRun bool `json:"-"`
	// Partial is set when a stopped run did not count the rows it had not
	// read (a pipe, or an interrupt while counting a long file).
	Partial bool `json:"-"`
	// Stats are the final figures (requests by answer, rates).
	Stats Stats `json:"-"`
	// SustainedQuota is the quota the adaptive rate measured as a
	// sustained limit (several episodes at a similar rate), to remember for
	// the next run; 0 if none.
	SustainedQuota float64 `json:"-"`
}

// OK reports whether every row ended enrolled or skipped.
func (s Summary) OK() bool { return s.Rejected == 0 && s.Failed == 0 && s.Pending == 0 }

// counts returns the summary as the run history stores it.
func (s Summary) counts() map[string]int {
	return map[string]int{"rows": s.Rows, "enrolled": s.Enrolled, "skipped": s.Skipped,
		"rejected": s.Rejected, "failed": s.Failed, "pending": s.Pending}
}

// runner is one run in progress.
type runner struct {
	opts Options
	st   *store.Store // nil in a dry run without a store
	sub  Submitter
	val  manifest.Validator
	gate *ratelimit.Gate
	live *liveStats
	obs  []Observer
	rej  *rejectsWriter

	runID uint64
	dups  *seenSet // the user_ids read so far, to find duplicates

	// ctx is the run's context: an interrupt (the parent's cancellation) or
	// a stop (cancel, with its cause) ends it, and every stage watches it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// reqCtx carries requests in flight: it outlives the run's context by a
	// grace so that an answer on its way is not lost.
	reqCtx context.Context

	partial bool // a stop left unread rows uncounted

	// fixSlots bounds how many photos are converted at once (each holds a
	// decoded image): about one per CPU, whatever the number of workers.
	// Each slot is a buffer that the photo being converted is read into, so
	// conversion buffers are as many as slots, not as workers.
	fixSlots chan *bytes.Buffer
	// photos opens photos in object storage and at https URLs.
	photos *photosource.Opener
}

// Run imports the rows of rd. st may be nil only for a dry run. The error is
// nil when every row read ended in a state; *AccountError,
// *ForeignAnswerError, ErrInterrupted or a store or manifest failure
// otherwise. The summary is valid in every case.
func Run(ctx context.Context, rd *manifest.Reader, st *store.Store, sub Submitter, opts Options) (Summary, error) {
	opts = withDefaults(opts)
	if st == nil && !opts.DryRun {
		return Summary{}, errors.New("importer: a store is required")
	}
	start := opts.Now()
	r := &runner{
		opts: opts,
		st:   st,
		sub:  sub,
		val:  manifest.Validator{MaxPhotoBytes: opts.MaxPhotoBytes, Now: opts.Now},
		gate: ratelimit.New(ratelimit.Config{Fixed: opts.Rate, Auto: opts.RateAuto && opts.Rate <= 0,
			Start: opts.StartRate, Max: opts.MaxRate, Learned: opts.LearnedRate, Workers: opts.poolSize(),
			AutoWindow: opts.AutoWorkers, OutageLimit: opts.OutageLimit}),
		live: newLiveStats(start, opts.DryRun, opts.Now),
		dups: newSeenSet(),
	}
	r.obs = r.observers()
	var runRec store.Run
	if !opts.DryRun {
		var err error
		if err = st.ClearRowRecords(); err != nil {
			return Summary{}, err
		}
		if runRec, err = st.BeginRun(opts.Manifest, start); err != nil {
			return Summary{}, err
		}
		r.runID = runRec.ID
		r.live.runID = runRec.ID
	}
	r.live.control = r.gate.Control
	if opts.FixPhotos {
		r.fixSlots = make(chan *bytes.Buffer, max(1, runtime.GOMAXPROCS(0)))
		for range cap(r.fixSlots) {
			r.fixSlots <- new(bytes.Buffer)
		}
	}
	limit := opts.MaxPhotoBytes
	if opts.FixPhotos {
		limit = max(limit, maxFixInput)
	}
	r.photos = photosource.New(photosource.Options{MaxBytes: limit, HTTPClient: opts.PhotoHTTPClient})
	defer r.photos.Close()

	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(nil)
	reqCtx, cancelReq := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReq()
	r.reqCtx = reqCtx
	stopGrace := context.AfterFunc(r.ctx, func() {
		grace := opts.Grace
		if ctx.Err() == nil {
			grace = opts.StopGrace // stopped by the API, not interrupted
		}
		t := time.AfterFunc(grace, cancelReq)
		<-reqCtx.Done()
		t.Stop()
	})
	defer stopGrace()

	if opts.Count != nil {
		go func() {
			if n, err := opts.Count(); err == nil {
				r.live.total.Store(int64(n))
			}
		}()
	}
	for _, o := range r.obs {
		o.Start(r.live.snapshot)
	}
	readErr := r.pipeline(rd)
	if !opts.DryRun {
		// Every row settled is counted once its commit is answered: after
		// this, the counts are final and are what the store holds.
		_ = st.Flush() // a failed commit is the run's error below
	}

	err := readErr
	if err == nil {
		err = r.cause()
	}
	if r.st != nil && err == nil {
		err = r.st.Err()
	}
	final := r.live.snapshot()
	sum := summaryOf(final)
	sum.RunID, sum.DryRun, sum.Partial = r.runID, opts.DryRun, r.partial
	sum.SustainedQuota = r.gate.SustainedQuota()
	sum.Seconds = opts.Now().Sub(start).Seconds()
	if r.rej != nil {
		if ferr := r.rej.flush(); ferr != nil && err == nil {
			err = fmt.Errorf("writing the rejects file: %w", ferr)
		}
	}
	if !opts.DryRun {
		runRec.Ended = opts.Now().UTC()
		runRec.Counts = sum.counts()
		runRec.Outcome = Outcome(err)
		if serr := st.EndRun(runRec); serr != nil {
			// The live file's last snapshot says so, for status.
			final.EndNotRecorded = serr.Error()
			sum.Stats.EndNotRecorded = final.EndNotRecorded
			if err == nil {
				err = serr
			}
		}
	}
	// Told last, so that the live file's last snapshot can say whether the
	// store recorded the run's end.
	for _, o := range r.obs {
		o.Finish(final, err)
	}
	return sum, err
}

func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxWorkers <= 0 {
		opts.MaxWorkers = 256
	}
	if opts.OutageLimit <= 0 {
		opts.OutageLimit = 15 * time.Minute
	}
	if opts.ThrottleLimit <= 0 {
		opts.ThrottleLimit = 10 * time.Minute
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Grace <= 0 {
		opts.Grace = 15 * time.Second
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 2 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPhotoBytes <= 0 {
		opts.MaxPhotoBytes = manifest.DefaultMaxPhotoBytes
	}
	return opts
}

// poolSize is the number of workers: the fixed pool, or the most an
// automatic window may use.
func (o Options) poolSize() int {
	if o.AutoWorkers {
		return o.MaxWorkers
	}
	return o.Workers
}

// observers lists who is told of the run: the display and rejects file
// given in Options, then the others.
func (r *runner) observers() []Observer {
	var obs []Observer
	if r.opts.Progress != nil {
		obs = append(obs, r.opts.Progress)
	}
	if r.opts.Rejects != nil {
		r.rej = newRejectsWriter(r.opts.Rejects)
		obs = append(obs, r.rej)
	}
	return append(obs, r.opts.Observers...)
}

// stop ends the run early with cause; the first cause wins.
func (r *runner) stop(cause error) { r.cancel(cause) }

// stopped reports whether the run is stopping (interrupt or stop).
func (r *runner) stopped() bool { return r.ctx.Err() != nil }

// cause returns why the run's context ended: nil if it did not, the stop's
// cause, or ErrInterrupted for a signal.
func (r *runner) cause() error {
	if r.ctx.Err() == nil {
		return nil
	}
	c := context.Cause(r.ctx)
	if errors.Is(c, context.Canceled) || errors.Is(c, ErrInterrupted) {
		return ErrInterrupted
	}
	return c
}

// Outcome names how a run that ended with err ended, as the run history
// records it: "finished", "interrupted", "stopped" (by Smile ID, or by
// answers that were not Smile ID's, or by an outage) or "failed".
func Outcome(err error) string {
	var ae *AccountError
	var fe *smileid.ForeignAnswerError
	var oe *OutageError
	switch {
	case err == nil:
		return "finished"
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.As(err, &ae), errors.As(err, &fe), errors.As(err, &oe):
		return "stopped"
	}
	return "failed"
}

// summaryOf turns final figures into the summary.
func summaryOf(s Stats) Summary {
	return Summary{Rows: int(s.Rows), Enrolled: int(s.Enrolled), Skipped: int(s.Skipped),
		Rejected: int(s.Rejected), Failed: int(s.Failed), Pending: int(s.Pending),
		Unsaved: int(s.Unsaved), UnsavedAnswers: int(s.UnsavedAnswers), Stats: s}
}
