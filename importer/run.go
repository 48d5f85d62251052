package importer

import (
	"bytes"
	"context"
	"errors"
	"runtime"

	"bulkenroll/importer/event"
	"bulkenroll/importer/photosource"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// run.go sets a run up and ends it; the stages have a file each (see doc.go).

// runner is one run in progress.
type runner struct {
	opts Options
	st   *store.Store // nil in a dry run without a store
	sub  Submitter
	val  manifest.Validator
	gate *ratelimit.Gate
	live *liveStats
	obs  []event.Observer

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
			Start: opts.StartRate, Max: opts.MaxRate, Learned: opts.LearnedRate, Workers: opts.PoolSize(),
			AutoWindow: opts.AutoWorkers, OutageLimit: opts.OutageLimit}),
		live: newLiveStats(start, opts.DryRun, opts.Now),
		dups: newSeenSet(),
	}
	r.obs = opts.Observers
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

	var release func()
	r.ctx, r.cancel, r.reqCtx, release = WithGrace(ctx, opts.Grace, opts.StopGrace)
	defer release()

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
	if ferr := r.flush(); ferr != nil && err == nil {
		err = ferr
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
	final.Outcome = Outcome(err)
	sum.Stats.Outcome = final.Outcome
	for _, o := range r.obs {
		o.Finish(final, err)
	}
	return sum, err
}

// flush flushes the observers that hold output (an event.Flusher), in
// order, and returns the first failure.
func (r *runner) flush() error {
	var first error
	for _, o := range r.obs {
		if f, ok := o.(event.Flusher); ok {
			if err := f.Flush(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// stop ends the run early with cause; the first cause wins.
func (r *runner) stop(cause error) { r.cancel(cause) }

// stopped reports whether the run is stopping (interrupt or stop).
func (r *runner) stopped() bool { return r.ctx.Err() != nil }

// cause returns why the run's context ended: nil if it did not, the stop's
// cause, or ErrInterrupted for a signal.
func (r *runner) cause() error { return StopCause(r.ctx) }
