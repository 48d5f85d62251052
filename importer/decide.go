package importer

import (
	"errors"
	"time"

	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
)

// action is what a worker does after an answer.
type action int

const (
	actEnroll    action = iota // the user is enrolled: settle enrolled
	actConflict                // 2209 for a user this store never had an unknown outcome for: reject
	actRefuse                  // Smile ID refused the row: reject with its code
	actStop                    // the answer concerns the whole run: stop it, the row keeps its state
	actRetry                   // transient: wait and try again
	actGiveUp                  // transient, retries used up: fail
	actJobExists               // 2215: the row's job_id reached Smile ID before, its answer lost: fail, never resend under a new job_id
)

func (a action) String() string {
	return [...]string{"enroll", "conflict", "refuse", "stop", "retry", "give up", "job exists"}[a]
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
	case smileid.JobExists:
		// The job_id was used: by an earlier request of this row whose
		// answer was lost. Its outcome stays unknown.
		return decision{act: actJobExists, unknown: true}
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

// answered reports whether err is an answer from the API that was not a
// throttle: the rate it was sent at was accepted.
func answered(err error) bool {
	var ae *smileid.APIError
	if err == nil {
		return true
	}
	return errors.As(err, &ae) && ae.Status != 429 && !ae.NotSmileID
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
