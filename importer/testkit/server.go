package testkit

import (
	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/smileid/signature"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// NewSandbox starts the emulator with the test credentials merged into opts,
// behind a Counter of the requests that reach it.
func NewSandbox(t testing.TB, opts sandbox.Options) (*sandbox.Server, *Counter, *httptest.Server) {
	t.Helper()
	if opts.PartnerID == "" {
		opts.PartnerID = Partner
	}
	if opts.APIKey == "" {
		opts.APIKey = APIKey
	}
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	c := &Counter{Next: sb}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	return sb, c, hs
}

// Counter is an http.Handler that counts requests and their user IDs before
// handing them to Next.
type Counter struct {
	// Next is the handler the requests go on to.
	Next http.Handler
	// Hook, if set, is called with each request's number (from 1) and body
	// before next sees it; it may answer itself by returning true.
	Hook func(n int64, body []byte, w http.ResponseWriter, r *http.Request) bool

	n     atomic.Int64
	mu    sync.Mutex
	users map[string]int
	times []time.Time
}

// ServeHTTP counts the request, then hands it to Hook and Next.
func (c *Counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := c.n.Add(1)
	id := UserIDOf(body)
	c.mu.Lock()
	if c.users == nil {
		c.users = make(map[string]int)
	}
	c.users[id]++
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
	if c.Hook != nil && c.Hook(n, body, w, r) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.Next.ServeHTTP(w, r)
}

// Requests returns how many requests arrived.
func (c *Counter) Requests() int { return int(c.n.Load()) }

// SentFor returns how many requests carried user id.
func (c *Counter) SentFor(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.users[id]
}

// Arrivals returns the arrival times of the requests.
func (c *Counter) Arrivals() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

// UserIDOf pulls user_id out of a request body without trusting it to be JSON.
func UserIDOf(body []byte) string {
	var v struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.UserID
}

// NewClient returns a client for base with the test credentials; mod may
// change the configuration and options first.
func NewClient(t testing.TB, base string, mod func(*smileid.Config, *smileid.ClientOptions)) *smileid.Client {
	t.Helper()
	cfg := smileid.Config{PartnerID: Partner, APIKey: APIKey, BaseURL: base}
	opts := smileid.ClientOptions{Workers: 4, Timeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg, &opts)
	}
	c, err := smileid.NewClient(cfg, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// SignedSuccess is a 200 answer for user, signed with key.
func SignedSuccess(key, partner, user string) string {
	ts := signature.Timestamp(time.Now())
	b, _ := json.Marshal(map[string]any{
		"ResultCode": "0840", "ResultText": "Enroll User", "SmileJobID": "0000001234",
		"PartnerParams": map[string]any{"user_id": user, "job_type": 4},
		"timestamp":     ts, "signature": signature.Sign(key, partner, ts),
	})
	return string(b)
}

// Flaky is an http.RoundTripper that fails chosen requests. For request
// number n (from 1), Before(n) may return an error to fail it without
// sending it; After(n) may return an error to fail it after the server
// answered (the outcome is then unknown to the caller, as with a dropped
// connection).
type Flaky struct {
	// Base sends the requests that are not failed before sending.
	Base http.RoundTripper
	// Before and After may fail request number n (see Flaky).
	Before, After func(n int64) error
	n             atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (f *Flaky) RoundTrip(req *http.Request) (*http.Response, error) {
	n := f.n.Add(1)
	if f.Before != nil {
		if err := f.Before(n); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	resp, err := f.Base.RoundTrip(req)
	if err != nil || f.After == nil {
		return resp, err
	}
	if aerr := f.After(n); aerr != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, aerr
	}
	return resp, nil
}

// ResetErr looks like a connection reset by the peer.
func ResetErr() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// MustAs is errors.As that fails the test when err is not a T.
func MustAs[T error](t testing.TB, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T) is not a %T", err, err, target)
	}
	return target
}
