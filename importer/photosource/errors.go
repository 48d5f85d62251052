package photosource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"gocloud.dev/gcerrors"
)

// Sentinel errors, matched with errors.Is on what Stat, Open and Photo.Read
// return. Every error these return is an *Error naming the photo.
var (
	// ErrNotFound means the file or object does not exist (for HTTP: a 404
	// or 410 answer). It is permanent: the row should be rejected.
	ErrNotFound = errors.New("no such object")
	// ErrTooLarge means the photo has more than Options.MaxBytes bytes. It is
	// permanent; Error.Size holds the size when it was announced.
	ErrTooLarge = errors.New("photo too large")
	// ErrInsecure means a plain http:// URL (or S3 endpoint) names a host that
	// is not a loopback address; it is refused before any connection.
	ErrInsecure = errors.New("plain http is allowed only for loopback hosts")
	// ErrBadRef means the reference cannot be used: an unknown scheme, a
	// missing bucket or key, or a URL that does not parse. It is permanent.
	ErrBadRef = errors.New("malformed photo reference")
)

// Error is the error returned for one photo. Its message names the photo
// with userinfo and query values removed, for example
// "photo: s3://b/k?endpoint=...: no such object".
type Error struct {
	// Ref is the photo reference, redacted (no userinfo, no query values).
	Ref string
	// Kind is one of the sentinel errors (ErrNotFound, ErrTooLarge,
	// ErrInsecure, ErrBadRef) or nil for other failures.
	Kind error
	// Size is the size of the photo in bytes when known (for ErrTooLarge,
	// the announced size), or -1.
	Size int64
	// Transient reports a failure worth trying again later (HTTP 5xx, 429,
	// a time-out, a dropped connection, a local EIO or EMFILE): the row
	// should be marked failed, not rejected. Stat and Open have already
	// retried it.
	Transient bool

	msg   string // what went wrong, in words
	cause error  // underlying error, or nil
}

// Error returns "photo: <redacted ref>: <reason>".
func (e *Error) Error() string {
	s := "photo: " + e.Ref + ": " + e.msg
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the kind and the underlying cause, so that errors.Is works
// with both the sentinels and, say, context.DeadlineExceeded.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// IsTransient reports whether err is a failure that may go away on its own
// (HTTP 5xx or 429, a time-out, a connection reset, a local EIO, EMFILE,
// ENFILE or EAGAIN): the caller should mark the row failed, to be tried again
// by a later run, rather than rejected. Cancellation of the caller's context
// (context.Canceled) is not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Transient
	}
	return transientCause(err)
}

// newErr builds an *Error.
func newErr(ref string, kind error, msg string, cause error) *Error {
	if msg == "" && kind != nil {
		msg = kind.Error()
	}
	return &Error{Ref: ref, Kind: kind, Size: -1, msg: msg, cause: cause}
}

// transientErr builds a transient *Error.
func transientErr(ref, msg string, cause error) *Error {
	e := newErr(ref, nil, msg, cause)
	e.Transient = true
	return e
}

// tooLarge builds the ErrTooLarge error of a photo of size bytes (-1 if not
// announced) over a limit of max bytes.
func tooLarge(ref string, size, max int64) *Error {
	msg := fmt.Sprintf("over the %d-byte limit", max)
	if size >= 0 {
		msg = fmt.Sprintf("%d bytes, over the %d-byte limit", size, max)
	}
	e := newErr(ref, ErrTooLarge, msg, nil)
	e.Size = size
	return e
}

// statusCoder is implemented by AWS SDK response errors (and others) that
// carry an HTTP status.
type statusCoder interface{ HTTPStatusCode() int }

// transientStatus reports whether an HTTP status is worth retrying.
func transientStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusTooManyRequests || code >= 500
}

// transientCause classifies an error that is not an *Error: time-outs,
// connection failures, truncated bodies, retryable HTTP statuses and local
// I/O errors that may clear up.
func transientCause(err error) bool {
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), // a connection closed before an answer
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EIO),
		errors.Is(err, syscall.EMFILE),
		errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.EAGAIN),
		errors.Is(err, syscall.EINTR),
		errors.Is(err, syscall.ENOMEM):
		return true
	}
	var sc statusCoder
	if errors.As(err, &sc) {
		return transientStatus(sc.HTTPStatusCode())
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return !dns.IsNotFound
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	switch gcerrors.Code(err) {
	case gcerrors.ResourceExhausted, gcerrors.Internal, gcerrors.DeadlineExceeded:
		return true
	}
	return false
}
