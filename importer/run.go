package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"bulkenroll/manifest"
	"bulkenroll/store"
)

// ErrInterrupted is returned when a signal stopped the run (exit code 130).
var ErrInterrupted = errors.New("interrupted")

// AccountError stops a run: Smile ID refused the account itself (2205, 2214,
// 2220). Rows not done stay pending.
type AccountError struct {
	API *APIError
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("stopped: %v: %s", e.API, AccountAdvice(e.API.Code))
}

// Unwrap returns the API error.
func (e *AccountError) Unwrap() error { return e.API }

// Submitter sends one user; *Client is the real one.
type Submitter interface {
	Submit(ctx context.Context, u User) (*Result, error)
}

// Options tune a run.
type Options struct {
	// Workers is the number of concurrent requests; default 4.
	Workers int
	// Rate is requests per second over all workers; 0 means no limit.
	Rate float64
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
	// Rejects, when set, receives the CSV of rows rejected in this run.
	Rejects io.Writer
	// Progress shows the run; nil shows nothing.
	Progress *Progress
	// Grace bounds how long requests in flight may finish after an interrupt; default 15s.
	Grace time.Duration
	// BackoffBase and BackoffMax shape retry waits; defaults 500ms and 30s.
	BackoffBase, BackoffMax time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Summary counts what a run did with the manifest's rows.
type Summary struct {
	Rows     int     `json:"rows"`
	Enrolled int     `json:"enrolled"`
	Skipped  int     `json:"skipped"`
	Rejected int     `json:"rejected"`
	Failed   int     `json:"failed"`
	Pending  int     `json:"pending"`
	Seconds  float64 `json:"seconds"`
	// RunID is the store's number for this run (0 for a dry run).
	RunID uint64 `json:"-"`
	// DryRun marks a run that sent nothing; Pending then counts the rows it would send.
	DryRun bool `json:"-"`
	// Partial is set when an interrupted run stopped counting unread rows.
	Partial bool `json:"-"`
}

// OK reports whether every row ended enrolled or skipped.
func (s Summary) OK() bool { return s.Rejected == 0 && s.Failed == 0 && s.Pending == 0 }

// counts returns the summary as the run history stores it.
func (s Summary) counts() map[string]int {
	return map[string]int{"rows": s.Rows, "enrolled": s.Enrolled, "skipped": s.Skipped,
		"rejected": s.Rejected, "failed": s.Failed, "pending": s.Pending}
}

// tally holds the live counts; the progress display reads it.
type tally struct {
	rows, enrolled, skipped, rejected, failed, pending atomic.Int64
}

func (t *tally) summary() Summary {
	return Summary{Rows: int(t.rows.Load()), Enrolled: int(t.enrolled.Load()), Skipped: int(t.skipped.Load()),
		Rejected: int(t.rejected.Load()), Failed: int(t.failed.Load()), Pending: int(t.pending.Load())}
}

// job is one row handed to a worker, already marked in the store.
type job struct {
	row     manifest.Row
	rec     store.Record // as marked: State pending, Attempts = prior + 1
	prior   int          // attempts recorded before this run's mark
	refused bool         // Smile ID refused the row last time: its prior attempts' outcome is known
}

// runner is one run in progress.
type runner struct {
	opts   Options
	st     *store.Store // nil in a dry run without a store
	sub    Submitter
	val    manifest.Validator
	gate   *gate
	tally  *tally
	runID  uint64
	dups   *manifest.Duplicates // dry runs only: they write nothing to find duplicates with
	rejMu  sync.Mutex
	rejCSV *rejectsWriter

	stopOnce sync.Once
	stopped  chan struct{} // closed on an account-level refusal or a store failure
	stopErr  error

	reqCtx  context.Context // requests in flight: outlives an interrupt by the grace
	partial bool            // an interrupt left rows uncounted
}

// Run imports the rows of rd. st may be nil only for a dry run. The error is
// nil when every row ended in a state; *AccountError, ErrInterrupted or a
// store or manifest failure otherwise. The summary is valid in every case.
func Run(ctx context.Context, rd *manifest.Reader, st *store.Store, sub Submitter, opts Options) (Summary, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Grace <= 0 {
		opts.Grace = 15 * time.Second
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
	if st == nil && !opts.DryRun {
		return Summary{}, errors.New("importer: a store is required")
	}
	start := opts.Now()
	r := &runner{
		opts:    opts,
		st:      st,
		sub:     sub,
		val:     manifest.Validator{MaxPhotoBytes: opts.MaxPhotoBytes, Now: opts.Now},
		gate:    newGate(opts.Rate, opts.Workers),
		tally:   &tally{},
		stopped: make(chan struct{}),
	}
	if opts.Rejects != nil {
		r.rejCSV = newRejectsWriter(opts.Rejects)
	}
	var runRec store.Run
	if opts.DryRun {
		r.dups = manifest.NewDuplicates()
	} else {
		var err error
		if err = st.ClearRowRecords(); err != nil {
			return Summary{}, err
		}
		if runRec, err = st.BeginRun(opts.Manifest, start); err != nil {
			return Summary{}, err
		}
		r.runID = runRec.ID
	}

	reqCtx, cancelReq := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReq()
	r.reqCtx = reqCtx
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(opts.Grace, cancelReq)
		<-reqCtx.Done()
		t.Stop()
	})
	defer stopGrace()

	if opts.Progress != nil {
		opts.Progress.start(r.tally, opts.DryRun)
	}
	readErr := r.pipeline(ctx, rd)

	sum := r.tally.summary()
	sum.RunID, sum.DryRun = r.runID, opts.DryRun
	sum.Seconds = opts.Now().Sub(start).Seconds()
	sum.Partial = r.partial
	if opts.Progress != nil {
		opts.Progress.stop()
	}
	var err error
	switch {
	case readErr != nil:
		err = readErr
	case r.stopErr != nil:
		err = r.stopErr
	case ctx.Err() != nil:
		err = ErrInterrupted
	}
	if r.rejCSV != nil {
		if ferr := r.rejCSV.flush(); ferr != nil && err == nil {
			err = fmt.Errorf("writing the rejects file: %w", ferr)
		}
	}
	if !opts.DryRun {
		runRec.Ended = opts.Now().UTC()
		runRec.Counts = sum.counts()
		runRec.Outcome = outcome(err)
		if serr := st.EndRun(runRec); serr != nil && err == nil {
			err = serr
		}
	}
	return sum, err
}

func outcome(err error) string {
	var ae *AccountError
	switch {
	case err == nil:
		return "finished"
	case errors.Is(err, ErrInterrupted):
		return "interrupted"
	case errors.As(err, &ae):
		return "stopped"
	}
	return "failed"
}

// stop ends the run early with err; the first reason wins.
func (r *runner) stop(err error) {
	r.stopOnce.Do(func() {
		r.stopErr = err
		close(r.stopped)
	})
}

func (r *runner) halted(ctx context.Context) bool {
	select {
	case <-r.stopped:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// pipeline runs the dispatcher and the workers until the manifest ends or
// the run stops, then accounts for the rows not reached.
func (r *runner) pipeline(ctx context.Context, rd *manifest.Reader) error {
	jobs := make(chan job, 2*r.opts.Workers)
	var g errgroup.Group
	for range r.opts.Workers {
		g.Go(func() error {
			w := worker{r: r}
			for j := range jobs {
				w.do(ctx, j)
			}
			return nil
		})
	}
	readErr := r.dispatch(ctx, rd, jobs)
	close(jobs)
	_ = g.Wait() // per-row failures are results, not errors
	if readErr == nil && r.halted(ctx) {
		readErr = r.drain(ctx, rd)
	}
	if r.st != nil && readErr == nil {
		if err := r.st.Err(); err != nil {
			readErr = err
		}
	}
	return readErr
}

// markBatch bounds how many rows are marked in one durable commit.
const markBatch = 256

// markCut is how many planned rows, at least, make a batch to mark while the
// workers are busy (when they run short, a batch goes at once, whatever its
// size). Each commit costs two fsyncs; at 64 rows a commit they stay a small
// part of a fast import's cost, and few rows are marked ahead of their request.
const markCut = 64

// dispatch reads rows, settles those that need no request, and hands the
// rest to the workers once their "being tried" mark is durable.
func (r *runner) dispatch(ctx context.Context, rd *manifest.Reader, jobs chan<- job) error {
	// The marks commit in the background: a marker goroutine waits for each
	// batch's commit and then hands its jobs out, while this loop plans the
	// next rows. One fsync then covers every batch queued meanwhile (group
	// commit), and neither the planning nor the workers wait on it in turn.
	marked := make(chan markedBatch, 1)
	markerDone := make(chan struct{})
	go func() {
		defer close(markerDone)
		for mb := range marked {
			if err := <-mb.done; err != nil {
				r.stop(err)
				for _, j := range mb.jobs {
					r.unreached(j)
				}
				continue
			}
			for _, j := range mb.jobs {
				jobs <- j
			}
		}
	}()
	defer func() {
		close(marked)
		<-markerDone
	}()
	var batch []job
	send := func() {
		if len(batch) == 0 {
			return
		}
		keys := make([]string, len(batch))
		recs := make([]store.Record, len(batch))
		for i := range batch {
			keys[i], recs[i] = batch[i].rec.UserID, batch[i].rec
		}
		// Queued marks are visible to Get at once, so plan sees them.
		marked <- markedBatch{jobs: batch, done: r.st.PutBatch(keys, recs)}
		batch = nil // the marker owns the sent one
	}
	for !r.halted(ctx) {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *manifest.RowError
		if err != nil && !errors.As(err, &rowErr) {
			// Planned but not marked: never sent, so they stay pending.
			for _, j := range batch {
				r.unreached(j)
			}
			return fmt.Errorf("reading the manifest: %w", err)
		}
		r.tally.rows.Add(1)
		j, ok := r.plan(row, rowErr)
		if !ok {
			continue
		}
		if r.opts.DryRun {
			r.tally.pending.Add(1)
			continue
		}
		batch = append(batch, j)
		if len(batch) >= min(markBatch, max(cap(jobs), markCut)) || len(jobs) == 0 && len(marked) == 0 {
			send()
		}
	}
	if r.halted(ctx) {
		// Marked but not handed out: never sent, so undo the attempt.
		for _, j := range batch {
			r.unreached(j)
		}
		return nil
	}
	send()
	return nil
}

// markedBatch is a batch of jobs whose marks are committing; done says when.
type markedBatch struct {
	jobs []job
	done <-chan error
}

// plan settles a row that needs no request (refused, duplicate, already
// enrolled, refused before with the same photo) and returns false; or
// returns the job that sends it, with its mark, and true.
func (r *runner) plan(row manifest.Row, rowErr *manifest.RowError) (job, bool) {
	now := r.opts.Now().UTC()
	if rowErr != nil {
		r.rejectRow(row, rowErr.Error())
		return job{}, false
	}
	fieldErr := r.val.CheckFields(&row)
	var fe *manifest.RowError
	if errors.As(fieldErr, &fe) && fe.Field == "user_id" {
		r.rejectRow(row, fe.Error())
		return job{}, false
	}
	var rec store.Record
	var found bool
	var seenRun uint64
	var seenLine int
	if r.st != nil {
		var err error
		rec, found, seenRun, seenLine, err = r.st.Lookup(row.UserID)
		if err != nil {
			r.stop(err)
			return job{}, false
		}
	}
	if first := r.duplicateOf(row, seenRun, seenLine); first != 0 {
		r.rejectRow(row, fmt.Sprintf("user_id: duplicate of line %d", first))
		return job{}, false
	}
	if found && rec.State == store.Enrolled {
		// Skipped without reading the photo or rewriting the record.
		r.tally.skipped.Add(1)
		return job{}, false
	}
	if !found {
		rec = store.Record{UserID: row.UserID}
	}
	rec.Run, rec.Line = r.runID, row.Line
	rec.CreatedAt, rec.Photo, rec.UpdatedAt = row.CreatedAt, row.Photo, now
	if fieldErr != nil {
		r.reject(row, rec, "", fieldErr.Error())
		return job{}, false
	}
	if r.opts.DryRun {
		// A run checks the photo in the worker, as it reads it to send it.
		if _, err := r.val.CheckPhoto(&row); err != nil {
			r.reject(row, rec, "", err.Error())
			return job{}, false
		}
	}
	if found && rec.RejectedByAPI() && !r.opts.RetryRejected {
		if sum := photoSum(row.PhotoPath); sum != "" && sum == rec.PhotoSHA256 {
			r.reject(row, rec, rec.ResultCode, fmt.Sprintf("%s (refused before with this same photo; change the photo or use --retry-rejected)", rec.ResultText))
			return job{}, false
		}
	}
	prior, refused := rec.Attempts, rec.RejectedByAPI()
	rec.State, rec.Attempts, rec.Error = store.Pending, prior+1, "request sent, answer not yet saved"
	return job{row: row, rec: rec, prior: prior, refused: refused}, true
}

// duplicateOf returns the line where this run already saw the row's user,
// or 0 after noting that it saw it here: in the store's seen list (seenRun
// and seenLine are what Lookup found there), or in memory for a dry run,
// which writes nothing.
func (r *runner) duplicateOf(row manifest.Row, seenRun uint64, seenLine int) int {
	if r.dups != nil {
		return r.dups.Seen(row.UserID, row.Line)
	}
	if seenRun == r.runID && seenLine != row.Line {
		return seenLine
	}
	r.st.MarkSeen(row.UserID, r.runID, row.Line)
	return 0
}

// photoSum hashes the file at path, or returns "" if it cannot be read.
func photoSum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// drain accounts for the rows an early stop left unread, by the state the
// store holds for them: enrolled ones are skipped, failed and rejected ones
// keep their state, new ones become pending. After an interrupt it gives up after
// a few seconds, or at once on standard input, and marks the summary partial.
func (r *runner) drain(ctx context.Context, rd *manifest.Reader) error {
	interrupted := ctx.Err() != nil
	if interrupted && r.opts.Manifest == "-" {
		r.partial = true
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; ; n++ {
		if interrupted && n%1024 == 0 && time.Now().After(deadline) {
			r.partial = true
			return nil
		}
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var rowErr *manifest.RowError
		if err != nil && !errors.As(err, &rowErr) {
			return fmt.Errorf("reading the manifest: %w", err)
		}
		r.tally.rows.Add(1)
		if rowErr != nil || row.UserID == "" || r.st == nil {
			r.tally.pending.Add(1)
			continue
		}
		rec, found, err := r.st.Get(row.UserID)
		if err != nil {
			return err
		}
		switch {
		case found && rec.State == store.Enrolled:
			r.tally.skipped.Add(1)
		case !found:
			r.tally.pending.Add(1)
			r.save(store.Record{UserID: row.UserID, State: store.Pending, Line: row.Line, CreatedAt: row.CreatedAt,
				Photo: row.Photo, Run: r.runID, Error: "not reached: the run stopped early", UpdatedAt: r.opts.Now().UTC()})
		case rec.State == store.Failed:
			// Not reached: it keeps the state an earlier run gave it, and
			// the summary says so, as report will.
			r.tally.failed.Add(1)
		case rec.State == store.Rejected:
			r.tally.rejected.Add(1)
		default:
			r.tally.pending.Add(1)
		}
	}
}

// unreached returns a marked row that was never sent to pending, undoing its attempt.
func (r *runner) unreached(j job) {
	rec := j.rec
	rec.State, rec.Attempts, rec.Error = store.Pending, j.prior, "not reached: the run stopped early"
	r.tally.pending.Add(1)
	r.save(rec)
}

// save queues rec in the store (nothing in a dry run).
func (r *runner) save(rec store.Record) {
	if r.opts.DryRun || r.st == nil {
		return
	}
	r.st.Put(rec.UserID, rec)
}

// rejectRow rejects a row that cannot own a user record (no usable user_id,
// a duplicate, a malformed record); its record is kept under its line.
func (r *runner) rejectRow(row manifest.Row, reason string) {
	rec := store.Record{UserID: row.UserID, State: store.Rejected, Line: row.Line, CreatedAt: row.CreatedAt,
		Photo: row.Photo, Error: reason, Run: r.runID, UpdatedAt: r.opts.Now().UTC()}
	r.tally.rejected.Add(1)
	if !r.opts.DryRun && r.st != nil {
		r.st.Put(store.RowKey(row.Line), rec)
	}
	r.report(row, "", reason, store.Rejected)
}

// reject marks the user's row rejected, with Smile ID's code when it has one.
func (r *runner) reject(row manifest.Row, rec store.Record, code, reason string) {
	rec.State, rec.Error = store.Rejected, reason
	if code == "" {
		rec.ResultCode, rec.ResultText = "", ""
	}
	r.tally.rejected.Add(1)
	r.save(rec)
	r.report(row, code, reason, store.Rejected)
}

// report tells the operator about a rejected or failed row and writes the
// rejects file.
func (r *runner) report(row manifest.Row, code, reason string, st store.State) {
	if r.opts.Progress != nil {
		r.opts.Progress.problem(row.Line, row.UserID, st, reason)
	}
	if st == store.Rejected && r.rejCSV != nil {
		r.rejMu.Lock()
		r.rejCSV.write(row, code, reason)
		r.rejMu.Unlock()
	}
}

// worker sends rows; each owns a photo buffer it reuses.
type worker struct {
	r   *runner
	buf bytes.Buffer
}

// do sends one row and saves how it ended. It never returns an error: every
// outcome is a state of the row.
func (w *worker) do(ctx context.Context, j job) {
	r := w.r
	if r.halted(ctx) {
		r.unreached(j)
		return
	}
	rec := j.rec
	if err := manifest.ReadPhoto(j.row.PhotoPath, r.opts.MaxPhotoBytes, &w.buf); err != nil {
		rec.Attempts = j.prior
		r.reject(j.row, rec, "", err.Error())
		return
	}
	u := User{UserID: j.row.UserID, CreatedAt: j.row.CreatedAt, Photo: w.buf.Bytes()}
	var lastErr error
	for try := 0; ; try++ {
		if err := r.gate.wait(ctx); err != nil {
			// Interrupted before this try went out.
			rec.Attempts = j.prior + try
			w.finishInterrupted(j, rec, lastErr)
			return
		}
		res, err := r.sub.Submit(r.reqCtx, u)
		rec.Attempts = j.prior + try + 1
		rec.UpdatedAt = r.opts.Now().UTC()
		if err == nil {
			w.enrolled(j, rec, res.ResultCode, res.ResultText, res.SmileJobID, "")
			return
		}
		lastErr = err
		var ae *APIError
		errors.As(err, &ae)
		switch Classify(err) {
		case AlreadyEnrolled:
			// Only a try whose outcome is unknown can have enrolled the user:
			// not one Smile ID answered with a refusal (a 2209 conflict among them).
			if try > 0 || (j.prior > 0 && !j.refused) {
				w.enrolled(j, rec, ae.Code, ae.Text, rec.SmileJobID,
					"an earlier request's outcome was unknown; Smile ID now answers 2209, so it enrolled the user")
				return
			}
			rec.ResultCode, rec.ResultText = ae.Code, ae.Text
			w.refused(j, rec, fmt.Sprintf("%v: conflict: this store never sent this user, so someone else enrolled it", err))
			return
		case Account:
			r.stop(&AccountError{API: ae})
			rec.State, rec.Error = store.Pending, "not done: "+err.Error()
			rec.ResultCode, rec.ResultText = ae.Code, ae.Text
			r.tally.pending.Add(1)
			r.save(rec)
			return
		case Permanent:
			rec.ResultCode, rec.ResultText = ae.Code, ae.Text
			if ae.Code == "" {
				rec.ResultCode = fmt.Sprint(ae.Status)
			}
			w.refused(j, rec, err.Error())
			return
		}
		// Transient.
		var wait time.Duration
		if ae != nil && ae.Status == 429 {
			r.gate.throttled(ae.RetryAfter)
			wait = ae.RetryAfter
		}
		if try >= r.opts.Retries {
			w.failed(j, rec, fmt.Sprintf("failed after %d attempts: %v", try+1, err))
			return
		}
		if ctx.Err() != nil || sleep(ctx, backoff(try, r.opts.BackoffBase, r.opts.BackoffMax, wait)) != nil {
			w.finishInterrupted(j, rec, err)
			return
		}
	}
}

func (w *worker) enrolled(j job, rec store.Record, code, text, jobID, note string) {
	rec.State, rec.ResultCode, rec.ResultText, rec.SmileJobID, rec.Error = store.Enrolled, code, text, jobID, note
	rec.PhotoSHA256 = ""
	w.r.tally.enrolled.Add(1)
	w.r.save(rec)
}

// refused rejects a row Smile ID refused, keeping the SHA-256 of the photo
// it refused: a later run sends the row again only if the photo changes.
// (Only refused rows are hashed: it is the one use of the hash, and hashing
// every photo would cost more than the rest of a row's own work.)
func (w *worker) refused(j job, rec store.Record, reason string) {
	sum := sha256.Sum256(w.buf.Bytes())
	rec.PhotoSHA256 = hex.EncodeToString(sum[:])
	w.r.reject(j.row, rec, rec.ResultCode, reason)
}

func (w *worker) failed(j job, rec store.Record, reason string) {
	rec.State, rec.Error = store.Failed, reason
	w.r.tally.failed.Add(1)
	w.r.save(rec)
	w.r.report(j.row, "", reason, store.Failed)
}

// finishInterrupted ends a row the interrupt caught between tries: failed
// if a try went out (the next run tries again), pending if none did.
func (w *worker) finishInterrupted(j job, rec store.Record, lastErr error) {
	if lastErr == nil {
		w.r.unreached(j)
		return
	}
	w.failed(j, rec, fmt.Sprintf("interrupted before retries finished; last error: %v", lastErr))
}
