package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// A job goes through its steps, each recorded before the next request:
// selected (job ID recorded) → prepared (upload URL recorded) → uploaded
// (the zip PUT) → done (an outcome). A stop leaves it at its step, and the
// next verify takes it on from there.

// throttleLimit bounds how long one request may be throttled (HTTP 429)
// before its job fails (the next verify continues it), as run's
// --throttle-limit default.
const throttleLimit = 10 * time.Minute

// errStopped: the run stopped while a request waited its turn.
var errStopped = errors.New("the run stopped")

// do brings one job as far as it goes.
func (r *runner) do(t task) {
	j := t.job
	var selfie smileid.ZipImage
	var frames []smileid.ZipImage
	loaded := false
	load := func() error {
		if loaded {
			return nil
		}
		if t.cand == nil {
			return &manifest.RowError{Field: manifest.ColUserID, Reason: "the manifest no longer lists this user; its job cannot be uploaded"}
		}
		var err error
		if selfie, frames, err = r.photos.images(r.ctx, *t.cand); err != nil {
			return err
		}
		loaded = true
		return nil
	}
	for {
		if r.ctx.Err() != nil {
			r.left.Add(1)
			return
		}
		switch j.Step {
		case store.JobSelected:
			if err := load(); err != nil {
				r.unreadable(&j, err)
				return
			}
			if !r.prepare(&j, false) {
				return
			}
		case store.JobPrepared:
			if err := load(); err != nil {
				r.unreadable(&j, err)
				return
			}
			if !r.upload(&j, selfie, frames) {
				return
			}
		case store.JobUploaded:
			r.poll(&j)
			return
		default:
			return
		}
	}
}

// prepare sends the prepare request and records its answer; it reports
// whether the job goes on. A 2215 for the job's ID (this store's alone)
// means an earlier request prepared it: it is prepared again with the
// retry flag for a new upload URL, or else polled.
func (r *runner) prepare(j *store.VerifyJob, retry bool) bool {
	var up *smileid.Upload
	err := r.call(func(ctx context.Context) error {
		var err error
		up, err = r.cl.PrepareUpload(ctx, smileid.Prepare{UserID: j.UserID, JobID: j.JobID, CallbackURL: r.opts.CallbackURL, Retry: retry})
		return err
	})
	if err == nil {
		j.Step, j.UploadURL, j.SmileJobID, j.Server = store.JobPrepared, up.UploadURL, up.SmileJobID, up.Raw
		j.Outcome, j.Reason = "", ""
		return r.save(j)
	}
	if smileid.JobUsedBefore(err) {
		if !retry {
			return r.prepare(j, true)
		}
		// Prepared before, and no new upload URL: poll what Smile ID has.
		j.Step, j.Reason = store.JobUploaded, "prepared before (2215): polled"
		return r.save(j)
	}
	r.failed(j, err)
	return false
}

// upload builds the zip and PUTs it, then records that it is uploaded.
func (r *runner) upload(j *store.VerifyJob, selfie smileid.ZipImage, frames []smileid.ZipImage) bool {
	zip, err := r.cl.BuildAuthZip(smileid.AuthZip{UserID: j.UserID, JobID: j.JobID, CallbackURL: r.opts.CallbackURL,
		Selfie: selfie, Liveness: frames, Server: j.Server})
	if err != nil {
		r.finish(j, smileid.AuthError, nil, err.Error())
		return false
	}
	err = r.call(func(ctx context.Context) error { return r.cl.Upload(ctx, j.UploadURL, zip) })
	if err != nil {
		r.failed(j, err)
		return false
	}
	j.Step = store.JobUploaded
	return r.save(j)
}

// poll asks for the job's status, 2 s then 4 s apart, until it is complete
// or PollTimeout passes (the job is then pending review, polled again by
// the next verify).
func (r *runner) poll(j *store.VerifyJob) {
	deadline := r.opts.Now().Add(r.opts.PollTimeout)
	for n := 0; ; n++ {
		if d := r.opts.PollDelay(n); d > 0 && ratelimit.Sleep(r.ctx, d) != nil {
			r.left.Add(1)
			return
		}
		var js *smileid.JobStatus
		err := r.call(func(ctx context.Context) error {
			var err error
			js, err = r.cl.JobStatus(ctx, j.UserID, j.JobID)
			return err
		})
		late := !r.opts.Now().Before(deadline)
		if err != nil {
			if !smileid.CannotAuthenticate(err) && smileid.Classify(err) == smileid.Transient && r.ctx.Err() == nil && !late {
				continue // an answer may come yet
			}
			r.failed(j, err)
			return
		}
		if js.JobComplete {
			outcome, why := smileid.DecideAuth(js)
			r.finish(j, outcome, js.Result, why)
			return
		}
		if late {
			_, why := smileid.DecideAuth(js) // an incomplete job's message
			r.finish(j, smileid.PendingReview, js.Result, fmt.Sprintf("not complete after --poll-timeout %s (%s): polled again by the next verify", r.opts.PollTimeout, why))
			return
		}
	}
}

// call sends one request through the gate, trying a transient failure
// again up to Retries times after a backoff (a 429 after its Retry-After;
// failures while the gate's breaker is open use up no retry).
func (r *runner) call(fn func(ctx context.Context) error) error {
	g := r.opts.Gate
	var throttledSince time.Time
	for try := 0; ; {
		sl, err := g.Acquire(r.ctx)
		if err != nil {
			return errStopped
		}
		if sl, err = g.Send(r.ctx, sl); err != nil {
			g.Release(sl)
			var oe *ratelimit.OutageError
			if errors.As(err, &oe) {
				r.cancel(oe)
			}
			return errStopped
		}
		err = fn(r.reqCtx)
		r.countRequest(err)
		var ae *smileid.APIError
		errors.As(err, &ae)
		retryAfter := time.Duration(0)
		if ae != nil && ae.Status == 429 {
			retryAfter = ae.RetryAfter
		}
		v := g.Done(sl, importer.GateOutcome(err), retryAfter)
		if err == nil || smileid.Classify(err) != smileid.Transient {
			return err
		}
		throttled := ae != nil && ae.Status == 429
		if !throttled && try >= r.opts.Retries {
			return err
		}
		wait := time.Duration(0)
		switch {
		case throttled:
			// A throttle uses up no retry, but a request throttled for
			// longer than throttleLimit gives up. During an episode the
			// gate holds the pool for the pause.
			if throttledSince.IsZero() {
				throttledSince = r.opts.Now()
			} else if r.opts.Now().Sub(throttledSince) > throttleLimit {
				return err
			}
			if !v.Episode {
				wait = max(retryAfter, time.Second/2)
			}
		case v.Outage:
			// The service is down: the gate's breaker holds the pool, and
			// the failure uses up no retry.
		default:
			wait = ratelimit.Backoff(try, r.opts.BackoffBase, r.opts.BackoffMax, 0)
			try++
		}
		if wait > 0 && ratelimit.Sleep(r.ctx, wait) != nil {
			return err
		}
	}
}

// failed ends a step that failed with err: 2210 and 2216 mean the user
// cannot authenticate; an account-level refusal or a foreign answer stops
// the run (the job keeps its step); another refusal is the job's error; a
// transient failure whose retries are used up is an error too, and the job
// keeps its step for the next verify to continue.
func (r *runner) failed(j *store.VerifyJob, err error) {
	var ae *smileid.APIError
	errors.As(err, &ae)
	class := smileid.Classify(err)
	switch {
	case smileid.CannotAuthenticate(err):
		j.ResultCode, j.ResultText = ae.Code, ae.Text
		r.finish(j, smileid.NotAuthenticated, nil, fmt.Sprintf("%s: %v", smileid.AuthCodeText(ae.Code), err))
	case errors.Is(err, errStopped), r.ctx.Err() != nil && class == smileid.Transient:
		r.left.Add(1)
	case class == smileid.Account:
		r.cancel(&importer.AccountError{API: ae})
		r.left.Add(1)
	case class == smileid.Foreign:
		r.cancel(&smileid.ForeignAnswerError{API: ae})
		r.left.Add(1)
	case class == smileid.Transient:
		j.Outcome, j.Reason, j.UpdatedAt = string(smileid.AuthError), fmt.Sprintf("failed after %d attempts: %v (the next verify continues this job)", r.opts.Retries+1, err), r.opts.Now().UTC()
		if ae != nil {
			j.ResultCode, j.ResultText = ae.Code, ae.Text
		}
		if r.save(j) {
			r.count(j)
		}
	default:
		if ae != nil {
			j.ResultCode, j.ResultText = ae.Code, ae.Text
		}
		r.finish(j, smileid.AuthError, nil, err.Error())
	}
}

// unreadable ends a job whose images cannot be read before its request:
// an error, with no request sent (a read that may pass keeps its step).
func (r *runner) unreadable(j *store.VerifyJob, err error) {
	var re *manifest.RowError
	if errors.As(err, &re) {
		r.finish(j, smileid.AuthError, nil, err.Error())
		return
	}
	j.Outcome, j.Reason, j.UpdatedAt = string(smileid.AuthError), "reading the images failed (the next verify tries again): "+err.Error(), r.opts.Now().UTC()
	if r.save(j) {
		r.count(j)
	}
}

// finish records the job's outcome and counts it.
func (r *runner) finish(j *store.VerifyJob, outcome smileid.AuthOutcome, res *smileid.JobResult, why string) {
	j.Step, j.Outcome, j.Reason, j.UpdatedAt = store.JobDone, string(outcome), why, r.opts.Now().UTC()
	if res != nil {
		j.ResultCode, j.ResultText = res.ResultCode, res.ResultText
		j.Compare, j.Confidence = res.Actions[smileid.CompareAction], string(res.ConfidenceValue)
		if res.SmileJobID != "" {
			j.SmileJobID = res.SmileJobID
		}
	}
	if r.save(j) {
		r.count(j)
	}
}

// count counts a job that reached its outcome and tells the observer.
func (r *runner) count(j *store.VerifyJob) {
	r.mu.Lock()
	switch smileid.AuthOutcome(j.Outcome) {
	case smileid.Authenticated:
		r.auth++
	case smileid.NotAuthenticated:
		r.notAuth++
	case smileid.PendingReview:
		r.pending++
	default:
		r.bad++
	}
	r.mu.Unlock()
	if r.opts.Observer != nil {
		r.opts.Observer.Job(*j)
	}
}

// save records the job durably; a store that cannot stops the run.
func (r *runner) save(j *store.VerifyJob) bool {
	if j.UpdatedAt.IsZero() || j.Outcome == "" {
		j.UpdatedAt = r.opts.Now().UTC()
	}
	if err := r.st.PutVerifyJob(*j); err != nil {
		r.cancel(err)
		r.left.Add(1)
		return false
	}
	return true
}
