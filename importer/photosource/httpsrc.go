package photosource

import (
	"bulkenroll/importer/ratelimit"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// httpStatusError is an HTTP answer that is not a success.
type httpStatusError struct {
	code  int
	after time.Duration // from Retry-After, or 0
}

// Error returns, for example, "HTTP 503 Service Unavailable".
func (e *httpStatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
}

// HTTPStatusCode returns the status code.
func (e *httpStatusError) HTTPStatusCode() int { return e.code }

// statusErr classifies a response that is not a success: 404 and 410 are
// ErrNotFound, 408, 425, 429 and 5xx transient, anything else permanent.
func statusErr(r *ref, resp *http.Response) error {
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return newErr(r.shown, ErrNotFound, "no such object (HTTP "+strconv.Itoa(resp.StatusCode)+")", nil)
	}
	se := &httpStatusError{code: resp.StatusCode, after: ratelimit.RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	e := newErr(r.shown, nil, "server answered", se)
	e.Transient = transientStatus(resp.StatusCode)
	return e
}

// do sends one request for r. Its errors are *Error values without the URL's
// secrets (the *url.Error of the client repeats the URL with its query).
func (o *Opener) do(ctx context.Context, r *ref, method string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.u.String(), nil)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, newErr(r.shown, ErrBadRef, "cannot make a request", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := o.client.Do(req)
	if err == nil {
		return resp, nil
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	switch {
	case errors.Is(err, ErrInsecure):
		return nil, newErr(r.shown, ErrInsecure, "redirected to plain http:// on a host that is not loopback; refused", nil)
	case ctx.Err() == context.DeadlineExceeded:
		return nil, transientErr(r.shown, "timed out after "+o.timeout.String(), context.DeadlineExceeded)
	case ctx.Err() != nil:
		return nil, newErr(r.shown, nil, "interrupted", ctx.Err())
	}
	e := newErr(r.shown, nil, strings.ToLower(method)+" failed", cause)
	e.Transient = transientCause(cause)
	return nil, e
}

// statHTTP finds the size with a HEAD request (or, if the server refuses
// HEAD, as some presigned URLs do, from the ranged GET) and the first bytes
// with a GET of the range 0-511.
func (o *Opener) statHTTP(ctx context.Context, r *ref) (Info, error) {
	info := Info{Size: -1}
	resp, err := o.do(ctx, r, http.MethodHead, nil)
	if err != nil {
		return Info{}, err
	}
	resp.Body.Close()
	headOK := false
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		headOK = true
		info.Size = resp.ContentLength
		info.ModTime = lastModified(resp)
	case c == http.StatusForbidden || c == http.StatusMethodNotAllowed || c == http.StatusNotImplemented:
		// Try the GET below.
	default:
		return Info{}, statusErr(r, resp)
	}
	if info.Size > o.max {
		return info, tooLarge(r.shown, info.Size, o.max)
	}
	if headOK && info.Size == 0 {
		return info, nil
	}

	resp, err = o.do(ctx, r, http.MethodGet, http.Header{"Range": {"bytes=0-" + strconv.Itoa(HeadLen-1)}})
	if err != nil {
		return Info{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if total, ok := rangeTotal(resp.Header.Get("Content-Range")); ok {
			info.Size = total
		}
	case http.StatusOK:
		if info.Size < 0 {
			info.Size = resp.ContentLength
		}
	case http.StatusRequestedRangeNotSatisfiable:
		info.Size = 0
		return info, nil
	default:
		return Info{}, statusErr(r, resp)
	}
	if info.ModTime.IsZero() {
		info.ModTime = lastModified(resp)
	}
	if info.Size > o.max {
		return info, tooLarge(r.shown, info.Size, o.max)
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, HeadLen))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return Info{}, transientErr(r.shown, "timed out after "+o.timeout.String(), context.DeadlineExceeded)
		}
		e := newErr(r.shown, nil, "reading failed", err)
		e.Transient = transientCause(err)
		return Info{}, e
	}
	info.Head = head
	return info, nil
}

// rangeTotal reads the complete length from a Content-Range header such as
// "bytes 0-511/20480".
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	return n, err == nil && n >= 0
}

// lastModified reads the Last-Modified header, or returns the zero time.
func lastModified(resp *http.Response) time.Time {
	t, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
	return t
}

// openHTTP GETs the photo. A Content-Length over the limit is refused
// without reading the body; a body of unknown length is read into memory,
// at most MaxBytes+1 bytes, so that the Photo's size is known.
func (o *Opener) openHTTP(ctx context.Context, r *ref) (*Photo, error) {
	resp, err := o.do(ctx, r, http.MethodGet, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNonAuthoritativeInfo {
		resp.Body.Close()
		return nil, statusErr(r, resp)
	}
	if resp.ContentLength > o.max {
		resp.Body.Close() // closes the connection without reading the body
		return nil, tooLarge(r.shown, resp.ContentLength, o.max)
	}
	if resp.ContentLength >= 0 {
		return newPhoto(resp.Body, resp.ContentLength, r, o.max), nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, o.max+1))
	resp.Body.Close()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, transientErr(r.shown, "timed out after "+o.timeout.String(), context.DeadlineExceeded)
		}
		e := newErr(r.shown, nil, "reading failed", err)
		e.Transient = transientCause(err)
		return nil, e
	}
	if int64(len(data)) > o.max {
		return nil, tooLarge(r.shown, -1, o.max)
	}
	return newPhoto(io.NopCloser(bytes.NewReader(data)), int64(len(data)), r, o.max), nil
}
