package importer

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"bulkenroll/importer/event"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// worker sends rows; each owns a buffer for the small photos it reads
// whole, and one for the first bytes of a photo under FixPhotos (the
// buffers of conversions belong to the runner's conversion slots).
type worker struct {
	r    *runner
	buf  bytes.Buffer
	head []byte
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
	send, err := w.prepare(j, &rec)
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
		res, err := send(r.reqCtx)
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
		case actJobExists:
			reason := jobExistsReason(rec.InFlightJobID, err)
			rec.Fail(reason, rec.OutcomeUnknown, now) // keeps the job in flight: never sent under a new job_id
			r.settleAnswer(j.key, j.row, rec, ae.Code, reason)
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
	rec.Refuse(code, ae.Text, reason, rowSum(&j.row), rec.OutcomeUnknown, w.r.opts.Now())
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
	r.tell(event.RowEvent{Row: j.row, State: store.Pending, Reason: reason})
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
