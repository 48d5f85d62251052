package smileid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// APIError is an answer from Smile ID (or whatever stood in its place) that
// is not a verified success. It keeps the HTTP status, Smile ID's code and
// text, and a short excerpt of a body that was not Smile ID JSON.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is Smile ID's error code, such as "2205"; empty if the body had none.
	Code string
	// Text is Smile ID's error text.
	Text string
	// Excerpt is the start of a body that was not the expected JSON, made safe to print.
	Excerpt string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Reason says what was wrong with a 200 answer (unparseable, unsigned, forged).
	Reason string
	// NotSmileID is set when the answer carries no Smile ID code (a proxy's
	// or load balancer's page, or a body that is not JSON): it says nothing
	// about the row.
	NotSmileID bool
	// WrongUser is set on a signed success for another user than the
	// request's (also NotSmileID: it is not this request's answer).
	WrongUser bool
	// Endpoint is the endpoint that answered; it decides how Classify
	// reads Code. The zero value is EndpointBackfill.
	Endpoint Endpoint
}

// Error describes the answer with Smile ID's code and text kept intact.
func (e *APIError) Error() string {
	var b strings.Builder
	switch {
	case e.Code != "":
		fmt.Fprintf(&b, "Smile ID %s: %s (HTTP %d)", e.Code, e.Text, e.Status)
	case e.Reason != "":
		fmt.Fprintf(&b, "HTTP %d: %s", e.Status, e.Reason)
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Text != "" {
			fmt.Fprintf(&b, ": %s", e.Text)
		}
	}
	if e.Excerpt != "" {
		fmt.Fprintf(&b, "; body starts %q", e.Excerpt)
	}
	return b.String()
}

// Class is what the import does about an outcome.
type Class int

// The classes of outcome.
const (
	// Transient: try again later (429, 5xx, 2201, time-outs, broken connections,
	// answers that cannot be believed). The outcome may be unknown.
	Transient Class = iota
	// Permanent: Smile ID refused this row; reject it.
	Permanent
	// Account: the refusal concerns the whole account (2205, 2214, 2220); stop the run.
	Account
	// AlreadyEnrolled: 2209, this user is enrolled already.
	AlreadyEnrolled
	// Foreign: an answer that is not Smile ID's (no Smile ID code: a proxy's
	// or load balancer's page, a wrong base URL); it says nothing about the
	// row, and the run stops.
	Foreign
	// JobExists: 2215, the request's job_id was used before (only endpoints
	// that take the partner's job_id, such as compare, answer it). After a
	// try whose outcome was unknown it means that try reached Smile ID.
	JobExists
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Account:
		return "account"
	case AlreadyEnrolled:
		return "already enrolled"
	case Foreign:
		return "not Smile ID's answer"
	case JobExists:
		return "job already exists"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classify says what kind of failure err is, as the endpoint that answered
// (the *APIError's Endpoint) means it. Errors that are not API answers
// (time-outs, resets, truncated bodies, DNS failures) are transient.
func Classify(err error) Class {
	var ae *APIError
	if !errors.As(err, &ae) {
		return Transient
	}
	return ae.Endpoint.Classify(err)
}

// classifyRest classifies an answer whose code the endpoint does not list.
func classifyRest(ae *APIError) Class {
	if ae.Code != "" && ae.Reason == "" {
		// Another Smile ID code: a refusal of the row, or a server error.
		if ae.Status >= 500 || ae.Status == 429 {
			return Transient
		}
		return Permanent
	}
	switch {
	case ae.Status == 429, ae.Status == 408, ae.Status >= 500:
		// A throttle or a server error, whoever in front of the API sent
		// it: slow down, retry. (A worker whose retries end on pages that
		// are not Smile ID's stops the run rather than failing the row.)
		return Transient
	case ae.Status >= 300 && ae.Status < 400:
		// A redirect: the base URL is not the API's; every row would get one.
		return Account
	case ae.Status == 401 || ae.Status == 403:
		// A bare 401/403 with no Smile ID code: most likely the key or environment.
		return Account
	case ae.NotSmileID:
		return Foreign
	case ae.Status < 300:
		// A 200 answer that could not be believed (unsigned, forged):
		// unknown outcome.
		return Transient
	}
	return Foreign
}

// OutcomeUnknown reports whether the request that got err may have enrolled
// the user: no answer after sending, a server error, or a success that could
// not be believed. A throttle, a refused connection or a refusal with a
// Smile ID code is a definite "not done".
func OutcomeUnknown(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == 429, ae.Status >= 300 && ae.Status < 500:
			return false
		case ae.Status >= 500:
			return true
		case ae.Code != "" && ae.Reason == "":
			return false
		}
		return true // a 200 that could not be believed
	}
	var te *TransportError
	if errors.As(err, &te) && errors.Is(te.Err, syscall.ECONNREFUSED) {
		return false
	}
	return err != nil
}

// BaseURLAdvice explains an answer that is not Smile ID's.
const BaseURLAdvice = "the answer is not Smile ID's (no Smile ID code): check --base-url / --env, or a proxy or load balancer in between; no row was settled by it, and the next run resumes"

// ForeignAnswerError stops a run: an answer without Smile ID's code came
// back, so the base URL (or something between) is not Smile ID's API.
type ForeignAnswerError struct {
	API *APIError
}

func (e *ForeignAnswerError) Error() string {
	if e.API.WrongUser {
		return fmt.Sprintf("stopped: %v: %s", e.API, WrongUserAdvice)
	}
	return fmt.Sprintf("stopped: %v: %s", e.API, BaseURLAdvice)
}

// WrongUserAdvice explains a signed answer about another user.
const WrongUserAdvice = "something between bulkenroll and Smile ID returns answers to other requests: check --base-url and any proxy in between; the row keeps its state (its outcome is unknown), and the next run resumes"

// Unwrap returns the API error.
func (e *ForeignAnswerError) Unwrap() error { return e.API }

// AccountAdvice explains the likely cause of an account-level refusal.
func AccountAdvice(code string) string {
	switch code {
	case "2205":
		return "the request was not authorized: check the API key and partner ID, and that they belong to the environment in use (sandbox keys do not work in production)"
	case "2214":
		return "the product is not activated for this partner: ask Smile ID to enable user backfill (job type 4)"
	case "2220":
		return "production access is not enabled for this partner: use the sandbox, or ask Smile ID to enable production"
	case "":
		return "the API refused the account, or the base URL is not Smile ID's API: check the credentials, --env and --base-url"
	}
	return "the API refused the account: check the credentials and the environment"
}

// isTimeout reports whether err is a time-out of a request.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// describeTransport turns a transport failure into a short message without
// the request's URL noise, keeping what happened.
func describeTransport(err error) string {
	switch {
	case isTimeout(err):
		return "no answer before the time-out (the outcome is unknown)"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed before a full answer (the outcome is unknown)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset (the outcome is unknown)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	return err.Error()
}

// excerpt returns the start of body as printable, single-line text.
func excerpt(body []byte, max int) string {
	if len(body) > max {
		body = body[:max]
	}
	var b strings.Builder
	for len(body) > 0 {
		r, size := utf8.DecodeRune(body)
		body = body[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune('?')
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			b.WriteRune('?')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
