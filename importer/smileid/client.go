package smileid

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid/signature"
)

// maxAnswerBytes bounds how much of an answer the client reads.
const maxAnswerBytes = 1 << 20

// ClientOptions tune a Client.
type ClientOptions struct {
	// Workers sizes the pool of keep-alive connections; default 4.
	Workers int
	// Timeout bounds each request, answer included; default 60s.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests inject faults with it).
	Transport http.RoundTripper
	// Now replaces the clock that stamps requests.
	Now func() time.Time
	// UserAgent is sent with every request.
	UserAgent string
}

// Client submits users to POST {base}/v1/backfill_users. It is safe for
// concurrent use by the workers of one pool.
type Client struct {
	cfg     Config
	url     string
	http    *http.Client
	timeout time.Duration
	now     func() time.Time
	agent   string
	bufs    sync.Pool
}

// NewClient checks cfg and returns a client for it.
func NewClient(cfg Config, opts ClientOptions) (*Client, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "bulkenroll"
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = opts.Workers
		t.MaxConnsPerHost = opts.Workers * 2
		t.MaxIdleConns = opts.Workers * 2
		t.ForceAttemptHTTP2 = true
		t.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		rt = t
	}
	c := &Client{
		cfg:     cfg,
		url:     cfg.BaseURL + "/v1/backfill_users",
		http:    &http.Client{Transport: rt, CheckRedirect: noRedirects},
		timeout: opts.Timeout,
		now:     opts.Now,
		agent:   opts.UserAgent,
	}
	c.bufs.New = func() any { return new(bytes.Buffer) }
	return c, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// User is one user to enroll.
type User struct {
	// UserID and CreatedAt are sent exactly as given.
	UserID, CreatedAt string
	// Photo is the JPEG or PNG file's bytes; the client base64-encodes them.
	// It is used only when Open is nil.
	Photo []byte
	// Open, if set, opens the photo file; Submit then streams the body,
	// encoding the photo as it reads it, instead of holding the photo, its
	// base64 and the whole body in memory. It is called once per request
	// sent, and again if the transport must send the body again.
	Open func() (io.ReadCloser, error)
	// Size is the photo's size in bytes, which Open must deliver exactly:
	// it fixes the Content-Length. A file that turns out shorter or longer
	// fails the request with ErrPhotoChanged (as a *PhotoError). When what
	// Open returns has a Size() int64 method (a remote photo, whose size is
	// known once it is opened), that size is used instead.
	Size int64
}

// ErrPhotoChanged is the cause of a streamed request that failed because
// the photo file no longer had the size it had when the row was checked.
var ErrPhotoChanged = errors.New("the photo file changed size since it was checked")

// PhotoError is the failure of a streamed request's photo: it could not be
// opened, or reading it failed or found it changed or broken before the
// body was whole. The request was then not sent (or not wholly: the server
// got less than the Content-Length, so it cannot have acted on it), so it
// has no outcome. Err is the cause; a *manifest.RowError when the photo
// itself is at fault.
type PhotoError struct {
	Err error
}

func (e *PhotoError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *PhotoError) Unwrap() error { return e.Err }

// Result is a verified enrollment.
type Result struct {
	ResultCode string
	ResultText string
	SmileJobID string
	// JobID is the answer's PartnerParams.job_id.
	JobID string
}

// successAnswer is the part of a 200 answer the client reads.
type successAnswer struct {
	ResultCode    string `json:"ResultCode"`
	ResultText    string `json:"ResultText"`
	SmileJobID    string `json:"SmileJobID"`
	Timestamp     string `json:"timestamp"`
	Signature     string `json:"signature"`
	PartnerParams struct {
		UserID string `json:"user_id"`
		JobID  string `json:"job_id"`
	} `json:"PartnerParams"`
	Code  json.RawMessage `json:"code"`
	Error string          `json:"error"`
}

// errorAnswer is Smile ID's error body.
type errorAnswer struct {
	Code  json.RawMessage `json:"code"`
	Error string          `json:"error"`
}

// TransportError is a request that got no usable answer: time-out, refused
// or reset connection, a body cut short. Its outcome may be unknown.
type TransportError struct {
	Err error
}

func (e *TransportError) Error() string { return describeTransport(e.Err) }

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// Submit sends one user and returns the verified result, or an *APIError,
// *TransportError or *PhotoError. It signs with a fresh timestamp on every
// call. With u.Open set it streams the photo from the file; if Open fails,
// or reading the photo fails before the body is whole, it returns a
// *PhotoError: the request was not sent.
func (c *Client) Submit(ctx context.Context, u User) (*Result, error) {
	if u.Open != nil {
		return c.submitStream(ctx, u)
	}
	buf := c.bufs.Get().(*bytes.Buffer)
	c.buildBody(buf, u)
	body := &trackedBody{Reader: bytes.NewReader(buf.Bytes()), closed: make(chan struct{})}
	res, err := c.send(ctx, body, nil, int64(buf.Len()), u.UserID)
	// The transport may still hold the body after the answer arrives; reuse
	// the buffer only once it has let go (it usually has by now).
	release := func() {
		if buf.Cap() <= 16<<20 {
			buf.Reset()
			c.bufs.Put(buf)
		}
	}
	select {
	case <-body.closed:
		release()
	default:
		go func() {
			<-body.closed
			release()
		}()
	}
	return res, err
}

// submitStream sends u with its photo streamed from u.Open.
func (c *Client) submitStream(ctx context.Context, u User) (*Result, error) {
	var head bytes.Buffer
	c.writeHead(&head, u)
	photoSize := int64(-1)
	open := func() (io.ReadCloser, error) {
		f, err := u.Open()
		if err != nil {
			return nil, &PhotoError{Err: fmt.Errorf("opening the photo of user %q: %w", u.UserID, err)}
		}
		size := u.Size
		if s, ok := f.(interface{ Size() int64 }); ok {
			size = s.Size()
		}
		if size < 0 {
			f.Close()
			return nil, &PhotoError{Err: fmt.Errorf("photo of user %q: negative size %d", u.UserID, size)}
		}
		if photoSize >= 0 && size != photoSize {
			f.Close()
			return nil, &PhotoError{Err: fmt.Errorf("%w: it has %d bytes, not %d", ErrPhotoChanged, size, photoSize)}
		}
		photoSize = size
		return &photoBody{head: head.Bytes(), f: f, size: size}, nil
	}
	body, err := open()
	if err != nil {
		return nil, err
	}
	size := int64(head.Len()) + int64(base64.StdEncoding.EncodedLen(int(photoSize))) + int64(len(bodyTail))
	return c.send(ctx, body, open, size, u.UserID)
}

// bodyTail ends the JSON body after the photo.
const bodyTail = `"}`

// buildBody writes the signed JSON body into buf, encoding the photo in
// place in the buffer's spare room.
func (c *Client) buildBody(buf *bytes.Buffer, u User) {
	buf.Reset()
	buf.Grow(base64.StdEncoding.EncodedLen(len(u.Photo)) + len(u.UserID) + len(u.CreatedAt) + len(c.cfg.PartnerID) + 256)
	c.writeHead(buf, u)
	buf.Write(base64.StdEncoding.AppendEncode(buf.AvailableBuffer(), u.Photo))
	buf.WriteString(bodyTail)
}

// writeHead writes the signed JSON body up to the photo's opening quote.
func (c *Client) writeHead(buf *bytes.Buffer, u User) {
	ts := signature.Timestamp(c.now())
	sig := signature.Sign(string(c.cfg.APIKey), c.cfg.PartnerID, ts)
	buf.WriteString(`{"partner_id":`)
	writeJSONString(buf, c.cfg.PartnerID)
	buf.WriteString(`,"timestamp":`)
	writeJSONString(buf, ts)
	buf.WriteString(`,"signature":`)
	writeJSONString(buf, sig)
	buf.WriteString(`,"user_id":`)
	writeJSONString(buf, u.UserID)
	buf.WriteString(`,"user_created_at":`)
	writeJSONString(buf, u.CreatedAt)
	buf.WriteString(`,"photo":"`)
}

// photoBody streams a request body: the JSON head, the photo in base64,
// encoded as it is read from the file, and the tail. It reads the file in
// chunks of a multiple of 3 bytes, so each chunk encodes on its own, and
// holds no more than one chunk and its encoding.
type photoBody struct {
	head      []byte
	f         io.ReadCloser
	size      int64 // bytes the file must have
	read      int64
	stage     int    // 0 head, 1 photo, 2 tail, 3 done
	pending   []byte // what the next Read returns first
	err       error
	closeOnce sync.Once
	raw       [3 * 4096]byte
	enc       [4 * 4096]byte
}

// Read implements io.Reader.
func (b *photoBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		switch b.stage {
		case 0:
			b.pending, b.stage = b.head, 1
		case 1:
			b.fill()
		case 2:
			b.pending, b.stage = []byte(bodyTail), 3
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// fill reads and encodes the next chunk of the photo, or checks that the
// file ends where it should and moves on to the tail.
func (b *photoBody) fill() {
	left := b.size - b.read
	if left == 0 {
		var one [1]byte
		n, err := io.ReadFull(b.f, one[:])
		switch {
		case n > 0:
			b.err = &PhotoError{Err: fmt.Errorf("%w: it has more than the %d bytes it had", ErrPhotoChanged, b.size)}
		case err != nil && err != io.EOF:
			b.err = &PhotoError{Err: fmt.Errorf("reading the photo: %w", err)}
		default:
			b.stage = 2
		}
		return
	}
	n := int(min(int64(len(b.raw)), left))
	m, err := io.ReadFull(b.f, b.raw[:n])
	b.read += int64(m)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		b.err = &PhotoError{Err: fmt.Errorf("%w: it ended after %d of the %d bytes it had", ErrPhotoChanged, b.read, b.size)}
		return
	case err != nil:
		b.err = &PhotoError{Err: fmt.Errorf("reading the photo: %w", err)}
		return
	}
	base64.StdEncoding.Encode(b.enc[:], b.raw[:n])
	b.pending = b.enc[:base64.StdEncoding.EncodedLen(n)]
}

// Close closes the file.
func (b *photoBody) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.f.Close() })
	return err
}

// send posts body, of exactly size bytes; getBody, if set, gives the body
// afresh for the transport to send again.
func (c *Client) send(ctx context.Context, body io.ReadCloser, getBody func() (io.ReadCloser, error), size int64, userID string) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.ContentLength = size
	req.GetBody = getBody
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	resp, data, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return c.success(resp, data, userID)
	}
	return nil, apiError(resp, data)
}

// do sends req and reads its answer (at most maxAnswerBytes of it). A body
// that stopped short of its Content-Length is its *PhotoError (not a
// request); no answer is a *TransportError.
func (c *Client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		var pe *PhotoError
		if errors.As(err, &pe) {
			return nil, nil, pe
		}
		return nil, nil, &TransportError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, nil, &TransportError{Err: err}
	}
	return resp, data, nil
}

// success believes a 200 answer only if it parses and its signature verifies.
func (c *Client) success(resp *http.Response, data []byte, userID string) (*Result, error) {
	var a successAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, &APIError{Status: resp.StatusCode, Reason: "the answer is not Smile ID JSON; not counted as enrolled", Excerpt: excerpt(data, 120), NotSmileID: true}
	}
	if code := codeString(a.Code); code != "" && a.ResultCode == "" {
		return nil, &APIError{Status: resp.StatusCode, Code: code, Text: a.Error}
	}
	if a.Signature == "" || a.Timestamp == "" {
		return nil, &APIError{Status: resp.StatusCode, Reason: "the answer is not signed; not counted as enrolled"}
	}
	if !signature.Verify(string(c.cfg.APIKey), c.cfg.PartnerID, a.Timestamp, a.Signature) {
		return nil, &APIError{Status: resp.StatusCode, Reason: "the answer's signature does not verify (forged, or another key); not counted as enrolled"}
	}
	if a.ResultCode != "0840" {
		return nil, &APIError{Status: resp.StatusCode, Code: a.ResultCode, Text: a.ResultText, Reason: "unexpected result code"}
	}
	if a.PartnerParams.UserID != "" && a.PartnerParams.UserID != userID {
		// Signed, but not this request's answer (replayed, or routed to the
		// wrong caller): it says nothing about the row, and the run stops.
		return nil, &APIError{Status: resp.StatusCode, Reason: fmt.Sprintf("the answer is for user %q, not %q: a signed answer to another request (replayed or misrouted); not counted as enrolled", a.PartnerParams.UserID, userID), NotSmileID: true, WrongUser: true}
	}
	return &Result{ResultCode: a.ResultCode, ResultText: a.ResultText, SmileJobID: a.SmileJobID, JobID: a.PartnerParams.JobID}, nil
}

// apiError reads Smile ID's error body, or keeps an excerpt of a foreign
// one. Only a body that carries Smile ID's code is Smile ID's answer.
func apiError(resp *http.Response, data []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: ratelimit.RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var a errorAnswer
	if err := json.Unmarshal(data, &a); err == nil && codeString(a.Code) != "" {
		e.Code = codeString(a.Code)
		e.Text = a.Error
		return e
	} else if err == nil && a.Error != "" {
		e.Text = a.Error
	}
	e.NotSmileID = true
	if len(bytes.TrimSpace(data)) > 0 {
		e.Excerpt = excerpt(data, 120)
	} else {
		e.Text = http.StatusText(resp.StatusCode)
	}
	return e
}

// codeString accepts a code sent as a JSON string or number.
func codeString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.Trim(string(raw), `"`)
}

// writeJSONString writes s as a JSON string literal.
func writeJSONString(buf *bytes.Buffer, s string) {
	if isPlainJSON(s) {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	b, _ := json.Marshal(s)
	buf.Write(b)
}

func isPlainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// trackedBody is a request body that signals when the transport closes it.
type trackedBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

// Close marks the body released.
func (b *trackedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
