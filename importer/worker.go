package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"bulkenroll/importer/photofix"
	"bulkenroll/importer/photosource"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// action is what a worker does after an answer.
type action int

const (
	actEnroll   action = iota // the user is enrolled: settle enrolled
	actConflict               // 2209 for a user this store never had an unknown outcome for: reject
	actRefuse                 // Smile ID refused the row: reject with its code
	actStop                   // the answer concerns the whole run: stop it, the row keeps its state
	actRetry                  // transient: wait and try again
	actGiveUp                 // transient, retries used up: fail
)

func (a action) String() string {
	return [...]string{"enroll", "conflict", "refuse", "stop", "retry", "give up"}[a]
}

// decision is what an answer means for a row.
type decision struct {
	act action
	// unknown: after this answer, some request for the row may have
	// enrolled the user without it being known.
	unknown bool
	// stop is the run's stop cause (actStop only).
	stop error
	// throttle: the answer was a 429; it waits its turn and uses up no
	// retry (the worker bounds its wait by the row's throttle limit).
	throttle bool
}

// decide turns an answer into what to do, given try, the number of
// failures of the row so far that used up a retry (429s and failures
// during an outage do not), and whether an earlier request for the row had
// an unknown outcome. It is a pure function of its arguments.
func decide(err error, try, retries int, unknownBefore bool) decision {
	if err == nil {
		return decision{act: actEnroll}
	}
	var ae *smileid.APIError
	errors.As(err, &ae)
	switch smileid.Classify(err) {
	case smileid.AlreadyEnrolled:
		// Only a request whose outcome is unknown can have enrolled the user.
		if unknownBefore {
			return decision{act: actEnroll}
		}
		return decision{act: actConflict}
	case smileid.Account:
		return decision{act: actStop, unknown: unknownBefore, stop: &AccountError{API: ae}}
	case smileid.Foreign:
		return decision{act: actStop, unknown: unknownBefore || smileid.OutcomeUnknown(err), stop: &smileid.ForeignAnswerError{API: ae}}
	case smileid.Permanent:
		return decision{act: actRefuse, unknown: unknownBefore}
	}
	unknown := unknownBefore || smileid.OutcomeUnknown(err)
	if ae != nil && ae.Status == 429 {
		// A throttle is not a failure: it never uses up a retry.
		return decision{act: actRetry, unknown: unknown, throttle: true}
	}
	if try >= retries {
		if ae != nil && ae.NotSmileID {
			// Retries used up on pages that are not Smile ID's (a proxy's
			// 502 every time): they say nothing about the row; stop.
			return decision{act: actStop, unknown: unknown, stop: &smileid.ForeignAnswerError{API: ae}}
		}
		return decision{act: actGiveUp, unknown: unknown}
	}
	return decision{act: actRetry, unknown: unknown}
}

// worker sends rows; each owns a buffer for the small photos it reads
// whole, and one for the first bytes of a photo under FixPhotos (the
// buffers of conversions belong to the runner's conversion slots).
type worker struct {
	r    *runner
	buf  bytes.Buffer
	head []byte
}

// answered reports whether err is an answer from the API that was not a
// throttle: the rate it was sent at was accepted.
func answered(err error) bool {
	var ae *smileid.APIError
	if err == nil {
		return true
	}
	return errors.As(err, &ae) && ae.Status != 429 && !ae.NotSmileID
}

// photo checks the row's photo, whole (see manifest.StructureCheck), and
// returns the user to send: with the photo streamed from its file as the
// request goes out (so a worker never holds a whole photo, its base64 and
// its body), or, with FixPhotos, converted in memory when Smile ID would
// refuse it as it is (rec's PhotoNote then says how). A remote photo is
// opened by the request, once the gate has let it go. A fault of the photo
// itself is a *manifest.RowError; a failure to read it is a plain error.
func (w *worker) photo(j job, rec *store.Record) (smileid.User, error) {
	r := w.r
	path := j.row.PhotoPath
	u := smileid.User{UserID: j.row.UserID, CreatedAt: j.row.CreatedAt}
	if photosource.IsRemote(path) {
		return w.remotePhoto(j, rec, u)
	}
	if !r.opts.FixPhotos {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() <= smallPhoto {
			// A small photo is read once, whole (and checked as it is
			// read): fewer system calls than a check and a stream, and a
			// pool holds little of them.
			if err := manifest.ReadPhoto(path, r.opts.MaxPhotoBytes, &w.buf); err != nil {
				return u, err
			}
			u.Photo = w.buf.Bytes()
			return u, nil
		}
		// A larger one is read through once to check it (it is then in
		// the page cache), and streamed by the request.
		size, _, err := manifest.PeekPhoto(path, r.opts.MaxPhotoBytes)
		if err != nil {
			return u, err
		}
		u.Size, u.Open = size, func() (io.ReadCloser, error) { return os.Open(path) }
		return u, nil
	}
	// One read checks a JPEG's or PNG's structure and keeps its first
	// bytes, up to its EXIF orientation: a photo that needs nothing is
	// streamed as it is, never decoded (so no pixel limit applies to it).
	size, n, err := manifest.ScanFile(path, maxFixInput, w.fixHead())
	if err != nil {
		return u, err
	}
	head := w.head[:n]
	if !photofix.Needs(head, size, r.opts.MaxPhotoBytes) {
		if rerr := manifest.CheckHead(head); rerr != nil {
			return u, rerr
		}
		u.Size, u.Open = size, func() (io.ReadCloser, error) { return os.Open(path) }
		return u, nil
	}
	return w.convert(u, rec, "", func(buf *bytes.Buffer) error { return readAll(path, maxFixInput, buf) })
}

// fixHead returns the worker's buffer for the first bytes of a photo.
func (w *worker) fixHead() []byte {
	if w.head == nil {
		w.head = make([]byte, fixHeadLen)
	}
	return w.head
}

// fixHeadLen is how many first bytes of a photo FixPhotos looks at to tell
// whether it needs anything: enough for the JPEG headers up to the EXIF
// segment (at most 64 KiB) and the frame header. A photo whose EXIF
// orientation lies beyond them is converted.
const fixHeadLen = 128 << 10

// convert reads a photo that needs fixing with read into the buffer of a
// conversion slot (one per CPU, so at most that many photos are held for
// conversion, whatever the number of workers) and converts it, returning
// the user with the converted photo and noting on rec what was done. A
// photo Fix leaves unchanged is sent only if it is whole. name, when set,
// starts the reason of a refusal (a remote photo's URL).
func (w *worker) convert(u smileid.User, rec *store.Record, name string, read func(*bytes.Buffer) error) (smileid.User, error) {
	r := w.r
	buf := <-r.fixSlots
	defer func() {
		buf.Reset()
		r.fixSlots <- buf
	}()
	buf.Reset()
	if err := read(buf); err != nil {
		return u, err
	}
	res, err := photofix.Fix(buf.Bytes(), photofix.Options{MaxBytes: r.opts.MaxPhotoBytes})
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case !res.Changed:
		reason = manifest.StructureReason(res.Data)
	}
	if reason != "" {
		if name != "" {
			reason = name + ": " + reason
		}
		return u, &manifest.RowError{Field: manifest.ColPhoto, Reason: reason}
	}
	if res.Changed {
		rec.PhotoNote = res.Note
	}
	u.Photo = bytes.Clone(res.Data)
	return u, nil
}

// smallPhoto is the largest photo a worker reads whole rather than
// streams: 64 workers hold at most 8 MiB of them (their base64 bodies are
// pooled by the client), while larger photos, up to 5 MiB, are streamed.
const smallPhoto = 128 << 10

// maxFixInput bounds the photos FixPhotos reads to convert.
const maxFixInput = 64 << 20

// readAll reads the file at path into buf, refusing more than limit bytes.
func readAll(path string, limit int64, buf *bytes.Buffer) error {
	buf.Reset()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening photo: %w", err)
	}
	defer f.Close()
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return fmt.Errorf("reading photo: %w", err)
	}
	if n > limit {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: fmt.Sprintf("over the %d-byte limit for conversion", limit)}
	}
	return nil
}

// do sends one row and settles it. It never returns an error: every outcome
// is a state of the row.
func (w *worker) do(j job) {
	r := w.r
	if r.stopped() {
		r.notReached(j, "not reached: the run stopped early")
		return
	}
	rec := j.rec
	rec.Attempts = j.prior.Attempts // counted again for each request sent
	rec.OutcomeUnknown = j.prior.OutcomeUnknown
	rec.PhotoNote = ""
	// The row takes a slot of the window before loading its photo, so
	// that a pool larger than the window holds no photo it cannot send.
	sl, err := r.gate.Acquire(r.ctx)
	if err != nil {
		r.notReached(j, "not reached: the run stopped early")
		return
	}
	held := true
	defer func() {
		if held {
			r.gate.Release(sl)
		}
	}()
	u, err := w.photo(j, &rec)
	if err != nil {
		w.unreadable(j, rec, err)
		return
	}
	var lastErr error
	try := 0 // failures that use up a retry: not 429s, not an outage's
	var throttledSince time.Time
	for {
		if !held {
			if sl, err = r.gate.Acquire(r.ctx); err != nil {
				w.endEarly(j, rec, int(rec.Attempts-j.prior.Attempts), lastErr)
				return
			}
			held = true
		}
		if sl, err = r.gate.Send(r.ctx, sl); err != nil {
			var oe *OutageError
			if errors.As(err, &oe) {
				r.stop(oe)
			}
			w.endEarly(j, rec, int(rec.Attempts-j.prior.Attempts), lastErr)
			return
		}
		res, err := r.sub.Submit(r.reqCtx, u)
		if pe := (*smileid.PhotoError)(nil); errors.As(err, &pe) {
			w.unreadable(j, rec, pe.Err) // no request went out
			return
		}
		rec.Attempts++
		r.live.answer(smileid.AnswerClass(err))
		var ae *smileid.APIError
		errors.As(err, &ae)
		v := r.gate.Done(sl, outcomeOf(err), retryAfterOf(ae))
		held = false
		d := decide(err, try, r.opts.Retries, rec.OutcomeUnknown)
		rec.OutcomeUnknown = d.unknown
		now := r.opts.Now()
		switch d.act {
		case actEnroll:
			if res != nil {
				rec.Enroll(res.ResultCode, res.ResultText, res.SmileJobID, res.JobID, "", now)
				r.settleAnswer(j.key, j.row, rec, "", "")
				return
			}
			note := "an earlier request's outcome was unknown; Smile ID now answers 2209, so it enrolled the user"
			rec.Enroll(ae.Code, ae.Text, "", "", note, now)
			r.settleAnswer(j.key, j.row, rec, ae.Code, note)
			return
		case actConflict:
			w.refuse(j, rec, ae, fmt.Sprintf("%v: conflict: this store never sent this user, so someone else enrolled it", err))
			return
		case actRefuse:
			w.refuse(j, rec, ae, err.Error())
			return
		case actStop:
			r.stop(d.stop)
			w.keep(j, rec, "not done: "+err.Error())
			return
		case actGiveUp:
			reason := fmt.Sprintf("failed after %d attempts: %v", try+1, err)
			rec.Fail(reason, rec.OutcomeUnknown, now)
			r.settle(j.key, j.row, rec, "", reason)
			return
		}
		lastErr = err
		var wait time.Duration
		switch {
		case d.throttle:
			// A 429 waits its turn: its Retry-After (the pool's pause, if
			// it began an episode), bounded by the row's throttle limit.
			if throttledSince.IsZero() {
				throttledSince = now
			}
			if lim := r.opts.ThrottleLimit; lim > 0 && now.Sub(throttledSince) >= lim {
				reason := fmt.Sprintf("throttled (HTTP 429) for over --throttle-limit %s; the next run tries again: %v", lim, err)
				rec.Fail(reason, rec.OutcomeUnknown, now)
				r.settle(j.key, j.row, rec, "", reason)
				return
			}
			wait = max(ae.RetryAfter, time.Second/2)
			if v.Episode {
				wait = 0 // the gate holds the pool for the pause
			}
		case v.Outage:
			// The service is down: the row waits for the breaker, its
			// retries kept for failures of its own.
		default:
			wait = ratelimit.Backoff(try, r.opts.BackoffBase, r.opts.BackoffMax, 0)
			try++
		}
		if wait > 0 && ratelimit.Sleep(r.ctx, wait) != nil {
			w.endEarly(j, rec, int(rec.Attempts-j.prior.Attempts), lastErr)
			return
		}
	}
}

// outcomeOf says what an answer tells the gate.
func outcomeOf(err error) ratelimit.Outcome {
	var ae *smileid.APIError
	var te *smileid.TransportError
	switch {
	case err == nil:
		return ratelimit.OK
	case errors.As(err, &ae) && ae.Status == 429:
		return ratelimit.Throttled
	case errors.As(err, &ae) && ae.Status >= 500, errors.As(err, &te):
		return ratelimit.Down
	case answered(err):
		return ratelimit.OK
	}
	return ratelimit.Foreign
}

// retryAfterOf returns a 429's Retry-After (0 for any other answer).
func retryAfterOf(ae *smileid.APIError) time.Duration {
	if ae == nil || ae.Status != 429 {
		return 0
	}
	return ae.RetryAfter
}

// refuse rejects a row Smile ID refused, keeping its code and text and the
// SHA-256 of the photo it refused: a later run sends the row again only if
// the photo changes. (Only refused rows are hashed: it is the one use of
// the hash, and hashing every photo would cost more than the rest of a
// row's own work.)
func (w *worker) refuse(j job, rec store.Record, ae *smileid.APIError, reason string) {
	code := ae.Code
	if code == "" {
		code = fmt.Sprint(ae.Status)
	}
	rec.Refuse(code, ae.Text, reason, photoSum(j.row.PhotoPath), rec.OutcomeUnknown, w.r.opts.Now())
	w.r.settleAnswer(j.key, j.row, rec, code, reason)
}

// keep ends a row that was sent but whose answer stopped the run: it keeps
// the state and fields it had, with its attempts and unknown outcome
// brought up to date (a new row gets a pending record saying why).
func (w *worker) keep(j job, rec store.Record, reason string) {
	r := w.r
	kept := j.prior
	if !j.found {
		kept = rec
		kept.State, kept.Error = store.Pending, reason
	}
	kept.Attempts, kept.OutcomeUnknown, kept.UpdatedAt = rec.Attempts, rec.OutcomeUnknown, r.opts.Now().UTC()
	if !r.opts.DryRun && r.st != nil {
		r.st.Put(j.key, kept)
	}
	r.live.pending.Add(1)
	r.tell(RowEvent{Row: j.row, State: store.Pending, Reason: reason})
}

// endEarly ends a row the stop caught before try number sent went out:
// not reached if none did, failed if one did (the next run tries again).
func (w *worker) endEarly(j job, rec store.Record, sent int, lastErr error) {
	if sent == 0 || lastErr == nil {
		w.r.notReached(j, "not reached: the run stopped early")
		return
	}
	if !errors.Is(w.r.cause(), ErrInterrupted) {
		// Stopped by an account-level refusal or a foreign answer: the row
		// was not done, and keeps its state (with its attempts counted).
		w.keep(j, rec, fmt.Sprintf("not done: the run stopped between tries; last error: %v", lastErr))
		return
	}
	reason := fmt.Sprintf("interrupted before retries finished; last error: %v", lastErr)
	rec.Fail(reason, rec.OutcomeUnknown, w.r.opts.Now())
	w.r.settle(j.key, j.row, rec, "", reason)
}

// unreadable ends a row whose photo could not be read or was refused
// before its request went out (before the first, or when it was opened
// again for a retry): rejected for a fault of the photo itself, failed
// (the next run tries again) for a read that may pass. Its outcome stays
// what earlier requests left it.
func (w *worker) unreadable(j job, rec store.Record, err error) {
	r := w.r
	if transientRead(err) {
		reason := fmt.Sprintf("reading the photo failed (the next run tries again): %v", err)
		rec.Fail(reason, rec.OutcomeUnknown, r.opts.Now())
		r.settle(j.key, j.row, rec, "", reason)
		return
	}
	rec.Invalidate(r.runID, j.row.Line, j.row.CreatedAt, j.row.Photo, err.Error(), r.opts.Now())
	r.settle(j.key, j.row, rec, "", err.Error())
}

// transientRead reports whether a photo read failed for a reason that may
// pass (an I/O error, too many open files) rather than because of the photo
// itself: ReadPhoto words the photo's own faults as a *manifest.RowError.
func transientRead(err error) bool {
	var re *manifest.RowError
	return !errors.As(err, &re)
}

// remotePhoto prepares a photo in object storage or at an https URL. The
// request opens it (once the gate lets the request go, under the requests'
// context: a wait at the gate does not count against its fetch, and a stop
// gives it the grace of requests in flight), checks its size and first
// bytes, and streams it, checking its structure as it goes: a photo that
// turns out broken ends the body short, so nothing is sent. A retry fetches
// it again. With FixPhotos, its first bytes are fetched first to tell
// whether it needs converting; one that does is fetched whole and converted
// before the gate, and a small one is kept from that first fetch.
func (w *worker) remotePhoto(j job, rec *store.Record, u smileid.User) (smileid.User, error) {
	r := w.r
	ref := j.row.PhotoPath
	if r.opts.FixPhotos {
		p, err := r.photos.Open(r.ctx, ref)
		if err != nil {
			return u, remoteErr(err)
		}
		defer p.Close()
		n, err := io.ReadFull(p, w.fixHead())
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return u, remoteErr(err)
		}
		head, size := w.head[:n], p.Size()
		if photofix.Needs(head, size, r.opts.MaxPhotoBytes) || int64(n) == size {
			return w.convert(u, rec, photosource.Redact(ref), func(buf *bytes.Buffer) error {
				buf.Write(head)
				if _, err := buf.ReadFrom(p); err != nil {
					return remoteErr(err)
				}
				return nil
			})
		}
		if rerr := checkRemoteHead(ref, size, head, r.opts.MaxPhotoBytes); rerr != nil {
			return u, rerr
		}
		// Needs nothing: sent as it is, fetched again by the request.
	}
	u.Size = -1 // the opened photo says its size
	u.Open = func() (io.ReadCloser, error) { return w.openRemote(ref) }
	return u, nil
}

// openRemote opens a remote photo for a request that the gate let go.
func (w *worker) openRemote(ref string) (io.ReadCloser, error) {
	r := w.r
	p, err := r.photos.Open(r.reqCtx, ref)
	if err != nil {
		return nil, remoteErr(err)
	}
	head := make([]byte, photosource.HeadLen)
	n, err := io.ReadFull(p, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		p.Close()
		return nil, remoteErr(err)
	}
	head = head[:n]
	if rerr := checkRemoteHead(ref, p.Size(), head, r.opts.MaxPhotoBytes); rerr != nil {
		p.Close()
		return nil, rerr
	}
	c := &checkedPhoto{r: io.MultiReader(bytes.NewReader(head), p), p: p, ref: ref}
	return c, nil
}

// checkedPhoto streams a remote photo through a structure check: at its
// end, a photo that would not decode fails the read with a
// *manifest.RowError, so the request's body ends short and is not sent.
type checkedPhoto struct {
	r     io.Reader
	p     *photosource.Photo
	ref   string
	check manifest.StructureCheck
}

// Read reads the photo, checking it.
func (c *checkedPhoto) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.check.Write(b[:n])
	if err == io.EOF {
		if reason := c.check.Reason(); reason != "" {
			return n, &manifest.RowError{Field: manifest.ColPhoto, Reason: photosource.Redact(c.ref) + ": " + reason}
		}
	} else if err != nil {
		err = remoteErr(err)
	}
	return n, err
}

// Size returns the photo's size as announced when it was opened.
func (c *checkedPhoto) Size() int64 { return c.p.Size() }

// Close ends the download.
func (c *checkedPhoto) Close() error { return c.p.Close() }

// remoteErr words a failure to fetch a remote photo: a fault of the photo
// (missing, too large, a bad URL) is a *manifest.RowError that rejects the
// row; a passing one (5xx, time-out) a plain error that fails it.
func remoteErr(err error) error {
	if photosource.IsTransient(err) {
		return err
	}
	return &manifest.RowError{Field: manifest.ColPhoto, Reason: strings.TrimPrefix(err.Error(), "photo: ")}
}

// checkRemoteHead refuses a remote photo from its size and first bytes:
// over limit, or not a JPEG or PNG. The reason names the URL, redacted.
func checkRemoteHead(ref string, size int64, head []byte, limit int64) *manifest.RowError {
	if size > limit {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: fmt.Sprintf("%s: %d bytes, over the %d-byte limit", photosource.Redact(ref), size, limit)}
	}
	if rerr := manifest.CheckHead(head); rerr != nil {
		rerr.Reason = photosource.Redact(ref) + ": " + rerr.Reason
		return rerr
	}
	return nil
}

// CheckRemotePhoto checks a photo in object storage or at an https URL
// without downloading it, as validate does: it exists (a HEAD or attributes
// call), is within limit, and its first bytes are a JPEG's or a PNG's. Any
// failure, a passing one too, is a problem of the row here.
func CheckRemotePhoto(ctx context.Context, photos *photosource.Opener, ref string, limit int64) *manifest.RowError {
	info, err := photos.Stat(ctx, ref)
	if err != nil {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: strings.TrimPrefix(err.Error(), "photo: ")}
	}
	return checkRemoteHead(ref, info.Size, info.Head, limit)
}
