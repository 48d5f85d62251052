package importer

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"bulkenroll/importer/smileid"
)

// TestDecide covers the worker's decision for every class of answer, on a
// first try and a last one, with and without an earlier unknown outcome.
func TestDecide(t *testing.T) {
	var (
		timeout    = &smileid.TransportError{Err: fmt.Errorf("read: %w", syscall.ETIMEDOUT)}
		refusedTCP = &smileid.TransportError{Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}
		reset      = &smileid.TransportError{Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}
		throttle   = &smileid.APIError{Status: 429, RetryAfter: 1e9, NotSmileID: true}
		server     = &smileid.APIError{Status: 500, Code: "2201", Text: "System Error"}
		proxy502   = &smileid.APIError{Status: 502, Excerpt: "<h1>Bad Gateway</h1>", NotSmileID: true}
		proxy404   = &smileid.APIError{Status: 404, Excerpt: "404 page not found", NotSmileID: true}
		html200    = &smileid.APIError{Status: 200, Reason: "the answer is not Smile ID JSON; not counted as enrolled", NotSmileID: true}
		forged     = &smileid.APIError{Status: 200, Reason: "the answer's signature does not verify"}
		redirect   = &smileid.APIError{Status: 302, NotSmileID: true}
		enrolled   = &smileid.APIError{Status: 400, Code: "2209", Text: "already enrolled"}
		refused    = &smileid.APIError{Status: 400, Code: "2213", Text: "bad input"}
		account    = &smileid.APIError{Status: 401, Code: "2205", Text: "Unauthorized"}
		notActive  = &smileid.APIError{Status: 400, Code: "2214", Text: "not activated"}
		// Compare's answers, classified for its endpoint.
		jobExists  = &smileid.APIError{Status: 400, Code: "2215", Text: "Job already exists", Endpoint: smileid.EndpointCompare}
		cmpSystem  = &smileid.APIError{Status: 400, Code: "2210", Text: "System Error", Endpoint: smileid.EndpointCompare}
		noMatch    = &smileid.APIError{Status: 200, Code: "0841", Text: "No Match", Endpoint: smileid.EndpointCompare}
		identical  = &smileid.APIError{Status: 200, Code: "0941", Text: "identical", Endpoint: smileid.EndpointCompare}
		cmpInputs  = &smileid.APIError{Status: 400, Code: "2413", Text: "selfie_image is required.", Endpoint: smileid.EndpointCompare}
		cmpAlready = &smileid.APIError{Status: 400, Code: "2209", Text: "already enrolled", Endpoint: smileid.EndpointCompare}
	)
	const retries = 3
	cases := []struct {
		name          string
		err           error
		try           int
		unknownBefore bool
		act           action
		unknown       bool
		stop          any // the stop cause's type, for actStop
	}{
		{"success", nil, 0, false, actEnroll, false, nil},
		{"compare 2215 after unknown: job exists", jobExists, 1, true, actJobExists, true, nil},
		{"compare 2215 keeps the outcome unknown", jobExists, 0, false, actJobExists, true, nil},
		{"compare 2210 retried", cmpSystem, 0, false, actRetry, false, nil},
		{"compare 2210 to the end fails", cmpSystem, retries, false, actGiveUp, false, nil},
		{"compare 0841 refused", noMatch, 0, false, actRefuse, false, nil},
		{"compare 0941 refused", identical, 0, false, actRefuse, false, nil},
		{"compare 2413 refused", cmpInputs, 0, false, actRefuse, false, nil},
		{"compare 2209 after unknown: enrolled", cmpAlready, 1, true, actEnroll, false, nil},
		{"compare 2209 never unknown: conflict", cmpAlready, 0, false, actConflict, false, nil},
		{"success after unknown", nil, 2, true, actEnroll, false, nil},
		{"2209 never unknown: conflict", enrolled, 0, false, actConflict, false, nil},
		{"2209 after a 429 only: conflict", enrolled, 1, false, actConflict, false, nil},
		{"2209 after unknown: enrolled", enrolled, 1, true, actEnroll, false, nil},
		{"2213 refused", refused, 0, false, actRefuse, false, nil},
		{"2213 keeps an earlier unknown", refused, 1, true, actRefuse, true, nil},
		{"2205 stops", account, 0, false, actStop, false, &AccountError{}},
		{"2214 stops, keeps unknown", notActive, 2, true, actStop, true, &AccountError{}},
		{"redirect stops", redirect, 0, false, actStop, false, &AccountError{}},
		{"proxy 404 stops", proxy404, 0, false, actStop, false, &smileid.ForeignAnswerError{}},
		{"HTML 200 stops", html200, 0, false, actStop, true, &smileid.ForeignAnswerError{}},
		{"proxy 502 retried", proxy502, 0, false, actRetry, true, nil},
		{"proxy 502 to the end stops", proxy502, retries, false, actStop, true, &smileid.ForeignAnswerError{}},
		{"429 retried, definite", throttle, 0, false, actRetry, false, nil},
		{"429 after the retries are used up: still retried (no retry used)", throttle, retries, false, actRetry, false, nil},
		{"429 far past the retries: still retried", throttle, retries + 10, false, actRetry, false, nil},
		{"429 keeps an earlier unknown", throttle, 1, true, actRetry, true, nil},
		{"Smile ID's own 429 retried too", &smileid.APIError{Status: 429, Code: "2201"}, retries, false, actRetry, false, nil},
		{"2201 retried, unknown", server, 0, false, actRetry, true, nil},
		{"2201 last try fails", server, retries, false, actGiveUp, true, nil},
		{"time-out unknown", timeout, 0, false, actRetry, true, nil},
		{"reset unknown", reset, retries, false, actGiveUp, true, nil},
		{"connection refused definite", refusedTCP, 0, false, actRetry, false, nil},
		{"forged 200 unknown", forged, 0, false, actRetry, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(c.err, c.try, retries, c.unknownBefore)
			var ae *smileid.APIError
			if want429 := errors.As(c.err, &ae) && ae.Status == 429; d.throttle != want429 {
				t.Errorf("decide(%v).throttle = %v, want %v", c.err, d.throttle, want429)
			}
			if d.act != c.act || d.unknown != c.unknown {
				t.Errorf("decide(%v, try %d, unknown %v) = %v unknown %v, want %v unknown %v",
					c.err, c.try, c.unknownBefore, d.act, d.unknown, c.act, c.unknown)
			}
			switch want := c.stop.(type) {
			case nil:
				if d.stop != nil {
					t.Errorf("stop cause %v, want none", d.stop)
				}
			case *AccountError:
				if !errors.As(d.stop, &want) {
					t.Errorf("stop cause %T, want *AccountError", d.stop)
				}
			case *smileid.ForeignAnswerError:
				if !errors.As(d.stop, &want) {
					t.Errorf("stop cause %T, want *smileid.ForeignAnswerError", d.stop)
				}
			}
		})
	}
}

// TestAnswerClass names each answer for the request counters.
func TestAnswerClass(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, smileid.AnswerEnrolled},
		{&smileid.APIError{Status: 400, Code: "2209"}, smileid.AnswerAlreadyEnrolled},
		{&smileid.APIError{Status: 400, Code: "2213"}, smileid.AnswerRefused},
		{&smileid.APIError{Status: 401, Code: "2205"}, smileid.AnswerAccount},
		{&smileid.APIError{Status: 429, NotSmileID: true}, smileid.AnswerThrottled},
		{&smileid.APIError{Status: 500, Code: "2201"}, smileid.AnswerServerError},
		{&smileid.APIError{Status: 503, NotSmileID: true}, smileid.AnswerServerError},
		{&smileid.APIError{Status: 404, NotSmileID: true}, smileid.AnswerNotSmileID},
		{&smileid.APIError{Status: 200, Reason: "forged"}, smileid.AnswerUnverified},
		{&smileid.TransportError{Err: syscall.ECONNRESET}, smileid.AnswerTransport},
	}
	for _, c := range cases {
		if got := smileid.AnswerClass(c.err); got != c.want {
			t.Errorf("smileid.AnswerClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
