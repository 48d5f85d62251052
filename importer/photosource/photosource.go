// Package photosource opens the remote photos named by a manifest's photo
// column: objects in cloud storage (s3://bucket/key, gs://bucket/key,
// azblob://container/key through gocloud.dev/blob, with each cloud's usual
// credentials) and https:// URLs (plain http:// only for loopback hosts).
//
// Reads are streamed and bounded: an Opener never reads more than
// Options.MaxBytes+1 bytes of a photo. Errors are *Error values naming the
// photo without secrets; ErrNotFound and ErrTooLarge (matched with errors.Is)
// are permanent, IsTransient tells failures worth trying again, and transient
// failures are retried inside Stat and Open before they are returned.
//
// Local paths are not its business: package manifest reads them (its checks
// of regular files and sizes are the only ones), and Stat and Open refuse a
// reference that is not a URL with ErrBadRef.
package photosource

import (
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/urlref"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"gocloud.dev/blob"
	// Drivers for s3://, gs:// and azblob:// URLs.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

// Defaults of Options.
const (
	DefaultMaxBytes int64 = 5 << 20
	DefaultTimeout        = 60 * time.Second
	DefaultRetries        = 3
	DefaultBackoff        = 250 * time.Millisecond
)

// HeadLen is how many bytes of a photo Stat reads to tell its type.
const HeadLen = 512

// maxRetryAfter caps how long a Retry-After answer makes a retry wait.
const maxRetryAfter = 10 * time.Second

// maxBackoff caps the wait between two tries (without a Retry-After).
const maxBackoff = 10 * time.Second

// Options configure an Opener. The zero value gives the defaults.
type Options struct {
	// MaxBytes is the largest photo accepted, in bytes (default 5 MiB).
	MaxBytes int64
	// HTTPClient fetches https:// and loopback http:// photos. Nil means a
	// client with connection, TLS and header time-outs. Redirects to plain
	// http:// hosts that are not loopback are refused either way. It is not
	// used for s3://, gs:// or azblob://, whose SDKs have their own.
	HTTPClient *http.Client
	// Timeout bounds one fetch (one try of Stat, or of Open and the reading
	// of the photo up to Close); default 60s.
	Timeout time.Duration
	// Retries is how many times a transient failure is tried again inside
	// Stat and Open (default 3; a negative value means none).
	Retries int
	// Backoff is the wait before the first retry, doubled for each next one,
	// with jitter (default 250ms). Tests set it small.
	Backoff time.Duration
}

// Opener opens photos by reference. It is safe for concurrent use; Close
// closes the buckets it opened.
type Opener struct {
	max     int64
	client  *http.Client
	timeout time.Duration
	retries int
	backoff time.Duration

	mu      sync.Mutex
	buckets map[string]*blob.Bucket // by scheme, bucket and canonical query
	closed  bool
}

// New returns an Opener with opts, defaults filled in.
func New(opts Options) *Opener {
	o := &Opener{
		max:     opts.MaxBytes,
		timeout: opts.Timeout,
		retries: opts.Retries,
		backoff: opts.Backoff,
		buckets: map[string]*blob.Bucket{},
	}
	if o.max <= 0 {
		o.max = DefaultMaxBytes
	}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	if o.retries == 0 {
		o.retries = DefaultRetries
	} else if o.retries < 0 {
		o.retries = 0
	}
	if o.backoff <= 0 {
		o.backoff = DefaultBackoff
	}
	var c http.Client
	if opts.HTTPClient != nil {
		c = *opts.HTTPClient
	} else {
		c = http.Client{Transport: defaultTransport()}
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && urlref.IsLoopback(req.URL.Hostname())) {
			return ErrInsecure
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	o.client = &c
	return o
}

// defaultTransport is the transport of the default HTTP client.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // photos do not compress; keep Content-Length
	}
}

// Info describes a photo without reading all of it.
type Info struct {
	// Size is the photo's size in bytes, or -1 if the source did not say.
	Size int64
	// Head holds the first bytes of the photo, up to HeadLen, to tell its
	// type; it is empty for an empty photo or one over the limit.
	Head []byte
	// ModTime is the last modification time, when the source gives one.
	ModTime time.Time
}

// Stat checks that the photo exists and returns its size and first bytes:
// for cloud storage an Attributes call and a ranged read; for https a HEAD
// request (or a ranged GET where HEAD is refused) and a ranged GET.
//
// A photo over MaxBytes gives its Info (Size set, no Head) together with an
// error matching ErrTooLarge. Transient failures are retried before they are
// returned.
func (o *Opener) Stat(ctx context.Context, ref string) (Info, error) {
	r, err := parseRef(ref)
	if err != nil {
		return Info{Size: -1}, err
	}
	var info Info
	err = o.retry(ctx, r, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		var err error
		switch r.kind {
		case kindBlob:
			info, err = o.statBlob(ctx, r)
		default:
			info, err = o.statHTTP(ctx, r)
		}
		return o.settle(ctx, r, err)
	})
	if err != nil && !errors.Is(err, ErrTooLarge) {
		return Info{Size: -1}, err
	}
	return info, err
}

// Open opens the photo for reading. The Photo streams its bytes, at most
// MaxBytes of them: a photo announced larger is refused at once with
// ErrTooLarge, and a body that turns out longer than announced, or than
// MaxBytes, makes Read fail. The caller must Close the Photo. Transient
// failures of opening are retried; a failure while reading is returned by
// Read (IsTransient tells whether to try again later).
func (o *Opener) Open(ctx context.Context, ref string) (*Photo, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	var p *Photo
	err = o.retry(ctx, r, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		var err error
		switch r.kind {
		case kindBlob:
			p, err = o.openBlob(ctx, r)
		default:
			p, err = o.openHTTP(ctx, r)
		}
		if err != nil {
			cancel()
			return o.settle(ctx, r, err)
		}
		p.ctx, p.cancel = ctx, cancel
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes the buckets the Opener opened. Stat and Open must not be
// called after it.
func (o *Opener) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	var errs []error
	for k, b := range o.buckets {
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(o.buckets, k)
	}
	if err := errors.Join(errs...); err != nil {
		return errors.Join(errors.New("photosource: closing buckets"), err)
	}
	return nil
}

// settle turns err, the failure of one try made under ctx, into an *Error:
// a time-out of the try is transient, and causes are classified.
func (o *Opener) settle(ctx context.Context, r *ref, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, context.Canceled) {
		return transientErr(r.shown, "timed out after "+o.timeout.String(), context.DeadlineExceeded)
	}
	if IsTransient(err) {
		return transientErr(r.shown, "transient failure", err)
	}
	return newErr(r.shown, nil, "cannot fetch", err)
}

// retry calls try until it succeeds, fails permanently, the retries are used
// up or ctx is done, waiting with exponential backoff and jitter between
// tries.
func (o *Opener) retry(ctx context.Context, r *ref, try func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return o.cancelled(ctx, r)
		}
		err := try(ctx)
		if err == nil || !IsTransient(err) || attempt >= o.retries {
			return err
		}
		if ctx.Err() != nil {
			return o.cancelled(ctx, r)
		}
		var after time.Duration
		if ra := (*httpStatusError)(nil); errors.As(err, &ra) {
			after = min(ra.after, maxRetryAfter)
		}
		if ratelimit.Sleep(ctx, ratelimit.Backoff(attempt, o.backoff, maxBackoff, after)) != nil {
			return o.cancelled(ctx, r)
		}
	}
}

// cancelled is the error for a caller's context that is done: transient if
// its deadline passed, not if it was cancelled.
func (o *Opener) cancelled(ctx context.Context, r *ref) error {
	err := ctx.Err()
	e := newErr(r.shown, nil, "interrupted", err)
	e.Transient = errors.Is(err, context.DeadlineExceeded)
	return e
}

// Photo is an open photo: an io.ReadCloser of at most MaxBytes bytes whose
// size is known before reading.
type Photo struct {
	rc     io.ReadCloser
	r      io.Reader // rc limited to size+1 bytes
	size   int64
	ref    string
	max    int64
	read   int64
	err    error // sticky
	ctx    context.Context
	cancel context.CancelFunc
}

// newPhoto wraps rc, announced as size bytes (0 <= size <= max).
func newPhoto(rc io.ReadCloser, size int64, r *ref, max int64) *Photo {
	return &Photo{rc: rc, r: io.LimitReader(rc, size+1), size: size, ref: r.shown, max: max}
}

// Size returns the photo's size in bytes, as announced when it was opened;
// Read fails if the body turns out to be longer or shorter.
func (p *Photo) Size() int64 { return p.size }

// Read reads the photo. It returns an *Error if the body is longer than
// announced (or than MaxBytes), shorter than announced (transient), or if
// reading fails (transient when the cause is, such as a reset connection or
// the fetch's time-out).
func (p *Photo) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	if p.read > p.size {
		n -= int(p.read - p.size)
		p.read = p.size
		if p.size >= p.max {
			p.err = tooLarge(p.ref, -1, p.max)
		} else {
			p.err = transientErr(p.ref, "body longer than the announced "+strconv.FormatInt(p.size, 10)+" bytes", nil)
		}
		return n, p.err
	}
	switch {
	case err == io.EOF && p.read < p.size:
		p.err = transientErr(p.ref, "body shorter than the announced "+strconv.FormatInt(p.size, 10)+" bytes", io.ErrUnexpectedEOF)
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		if p.ctx != nil && p.ctx.Err() == context.DeadlineExceeded {
			p.err = transientErr(p.ref, "reading timed out", context.DeadlineExceeded)
		} else {
			e := newErr(p.ref, nil, "reading failed", err)
			e.Transient = IsTransient(err)
			p.err = e
		}
	default:
		return n, nil
	}
	return n, p.err
}

// Close closes the photo and ends its fetch.
func (p *Photo) Close() error {
	err := p.rc.Close()
	if p.cancel != nil {
		p.cancel()
	}
	if err != nil {
		return newErr(p.ref, nil, "closing", err)
	}
	return nil
}
