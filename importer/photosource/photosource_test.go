package photosource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// photo returns n bytes that start like a JPEG.
func photo(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	return b
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// startS3 serves an in-memory S3 (gofakes3) on loopback with bucket
// "bucket" and returns its endpoint, the backend and a count of the body
// bytes served. It sets fake AWS credentials in the environment.
func startS3(t *testing.T) (string, gofakes3.Backend, *atomic.Int64) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-test-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	backend := s3mem.New()
	if err := backend.CreateBucket("bucket"); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	h := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(countingWriter{w, &served}, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, backend, &served
}

// putObject stores data at key in the fake S3 bucket.
func putObject(t *testing.T, b gofakes3.Backend, key string, data []byte) {
	t.Helper()
	if _, err := b.PutObject("bucket", key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// readAll opens ref and reads all of it.
func readAll(ctx context.Context, o *Opener, ref string) ([]byte, int64, error) {
	p, err := o.Open(ctx, ref)
	if err != nil {
		return nil, -1, err
	}
	defer p.Close()
	b, err := io.ReadAll(p)
	return b, p.Size(), err
}

// httpFixture is an https server with the handlers the tests use, and a
// count of the requests to each path.
type httpFixture struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func (f *httpFixture) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

func newHTTPFixture(t *testing.T, tlsServer bool, data []byte) *httpFixture {
	f := &httpFixture{calls: map[string]int{}}
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "ok.jpg", time.Unix(1700000000, 0), bytes.NewReader(data))
	})
	mux.HandleFunc("/flaky.jpg", func(w http.ResponseWriter, r *http.Request) {
		if f.count("/flaky.jpg") <= 2 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/always500.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/forbidden.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	mux.HandleFunc("/liar.jpg", func(w http.ResponseWriter, r *http.Request) {
		// Announce 100 bytes, then send 10 MB on the raw connection.
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100\r\n\r\n")
		chunk := photo(64 << 10)
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		for sent := 0; sent < 10<<20; sent += len(chunk) {
			if _, err := bw.Write(chunk); err != nil {
				return
			}
		}
		bw.Flush()
	})
	mux.HandleFunc("/endless.jpg", func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: chunked, 10 MB.
		chunk := photo(64 << 10)
		for sent := 0; sent < 10<<20; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/short.jpg", func(w http.ResponseWriter, r *http.Request) {
		// Announce 100 bytes, send 10, drop the connection.
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
		bw.Write(data[:10])
		bw.Flush()
		conn.Close()
	})
	mux.HandleFunc("/hang.jpg", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
		panic(http.ErrAbortHandler) // never answer
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls[r.URL.Path]++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	if tlsServer {
		f.srv = httptest.NewTLSServer(h)
	} else {
		f.srv = httptest.NewServer(h)
	}
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(done) })
	return f
}

// countingClient is the server's client whose connections count the bytes
// they read.
func countingClient(srv *httptest.Server, n *atomic.Int64) *http.Client {
	tr := srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: n}, nil
	}
	return &http.Client{Transport: tr}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestOpen(t *testing.T) {
	endpoint, backend, served := startS3(t)
	const max = 1 << 20
	small := photo(300 << 10)
	putObject(t, backend, "photos/ok.jpg", small)
	putObject(t, backend, "photos/big.jpg", photo(3<<20))
	s3q := "?endpoint=" + endpoint + "&use_path_style=true&region=us-east-1"

	local := filepath.Join(t.TempDir(), "ok.jpg")
	if err := os.WriteFile(local, small, 0o644); err != nil {
		t.Fatal(err)
	}

	hs := newHTTPFixture(t, true, small)
	plain := newHTTPFixture(t, false, small)
	var clientRead atomic.Int64
	base := Options{MaxBytes: max, HTTPClient: countingClient(hs.srv, &clientRead), Timeout: 5 * time.Second, Retries: 3, Backoff: time.Millisecond}
	o := New(base)
	t.Cleanup(func() { o.Close() })
	hangOpts := base
	hangOpts.Timeout = 200 * time.Millisecond
	hangOpts.Retries = 1
	hangOpts.HTTPClient = hs.srv.Client()
	hanging := New(hangOpts)

	var dialed atomic.Int64
	noDial := New(Options{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed.Add(1)
			return nil, errors.New("dial attempted")
		},
	}}})

	tests := []struct {
		name      string
		opener    *Opener
		ref       string
		want      []byte // nil: an error is expected
		is        error  // sentinel the error must match
		transient bool
		msg       []string // substrings of the error message
		notMsg    []string // substrings the message must not contain
		within    time.Duration
		check     func(t *testing.T, got []byte, err error)
	}{
		// Local photos are package manifest's: a path is refused unread.
		{name: "local path refused", ref: local, is: ErrBadRef, msg: []string{"not a URL"}},
		{name: "s3 ok", ref: "s3://bucket/photos/ok.jpg" + s3q, want: small},
		{name: "s3 missing key", ref: "s3://bucket/photos/nokey.jpg" + s3q, is: ErrNotFound,
			msg:    []string{"photo: s3://bucket/photos/nokey.jpg?", "endpoint=REDACTED", "no such object"},
			notMsg: []string{"127.0.0.1", "secret-test-key", "AKIDTEST"}},
		{name: "s3 missing bucket", ref: "s3://nobucket/ok.jpg" + s3q, is: ErrNotFound},
		{name: "s3 over the limit", ref: "s3://bucket/photos/big.jpg" + s3q, is: ErrTooLarge, msg: []string{"3145728 bytes, over the 1048576-byte limit"},
			check: func(t *testing.T, _ []byte, err error) {
				var e *Error
				if !errors.As(err, &e) || e.Size != 3<<20 {
					t.Errorf("Size: got %+v", e)
				}
				if n := served.Load(); n > max+1+64<<10 {
					t.Errorf("served %d bytes for a photo over a %d-byte limit", n, max)
				}
			}},
		{name: "https ok", ref: hs.srv.URL + "/ok.jpg", want: small},
		{name: "https ok with secrets", ref: strings.Replace(hs.srv.URL, "https://", "https://user:pw@", 1) + "/ok.jpg?X-Amz-Signature=s3cr3t", want: small},
		{name: "https 404", ref: hs.srv.URL + "/missing.jpg?token=s3cr3t", is: ErrNotFound,
			msg: []string{"/missing.jpg?token=REDACTED: no such object (HTTP 404)"}, notMsg: []string{"s3cr3t"}},
		{name: "https 503 twice then 200", ref: hs.srv.URL + "/flaky.jpg", want: small,
			check: func(t *testing.T, _ []byte, _ error) {
				if n := hs.count("/flaky.jpg"); n != 3 {
					t.Errorf("%d requests, want 3", n)
				}
			}},
		{name: "https always 500", ref: hs.srv.URL + "/always500.jpg", transient: true, msg: []string{"HTTP 500"},
			check: func(t *testing.T, _ []byte, _ error) {
				if n := hs.count("/always500.jpg"); n != 4 {
					t.Errorf("%d requests, want 1 + 3 retries", n)
				}
			}},
		{name: "https 403 permanent", ref: hs.srv.URL + "/forbidden.jpg", msg: []string{"HTTP 403"}},
		{name: "https liar: Content-Length 100, 10 MB sent", ref: hs.srv.URL + "/liar.jpg",
			check: func(t *testing.T, got []byte, err error) {
				// net/http stops at the announced length; either way no
				// more than the announced bytes reach the caller.
				if err == nil && len(got) != 100 {
					t.Errorf("got %d bytes", len(got))
				}
			}},
		{name: "https chunked 10 MB", ref: hs.srv.URL + "/endless.jpg", is: ErrTooLarge, msg: []string{"over the 1048576-byte limit"}},
		{name: "https body shorter than announced", ref: hs.srv.URL + "/short.jpg", transient: true},
		{name: "https hanging server", opener: hanging, ref: hs.srv.URL + "/hang.jpg", transient: true, msg: []string{"timed out"}, within: 3 * time.Second,
			check: func(t *testing.T, _ []byte, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("not a deadline: %v (%d requests)", err, hs.count("/hang.jpg"))
				}
			}},
		{name: "http loopback ok", opener: New(Options{HTTPClient: plain.srv.Client()}), ref: plain.srv.URL + "/ok.jpg", want: small},
		{name: "http non-loopback refused", opener: noDial, ref: "http://10.1.2.3/a.jpg", is: ErrInsecure, within: time.Second,
			check: func(t *testing.T, _ []byte, _ error) {
				if dialed.Load() != 0 {
					t.Error("a connection was attempted")
				}
			}},
		{name: "s3 plain http endpoint non-loopback refused", opener: noDial, ref: "s3://bucket/k.jpg?endpoint=http://10.1.2.3:9000", is: ErrInsecure},
		{name: "unknown scheme", ref: "ftp://host/a.jpg", is: ErrBadRef, msg: []string{"unsupported scheme"}},
		{name: "s3 missing key", ref: "s3://bucket", is: ErrBadRef, msg: []string{"missing object key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.opener
			if op == nil {
				op = o
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			clientRead.Store(0)
			served.Store(0)
			start := time.Now()
			got, size, err := readAll(ctx, op, tt.ref)
			if tt.within > 0 && time.Since(start) > tt.within {
				t.Errorf("took %v, want under %v", time.Since(start), tt.within)
			}
			if n := clientRead.Load(); n > max+256<<10 {
				t.Errorf("the client read %d bytes from the network, over the %d-byte limit", n, max)
			}
			if tt.check != nil {
				tt.check(t, got, err)
			}
			if tt.want != nil {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if !bytes.Equal(got, tt.want) || size != int64(len(tt.want)) {
					t.Fatalf("got %d bytes (Size %d), want %d identical bytes", len(got), size, len(tt.want))
				}
				return
			}
			if tt.check != nil && tt.is == nil && !tt.transient && tt.msg == nil {
				return
			}
			if err == nil {
				t.Fatalf("no error; got %d bytes", len(got))
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
			if IsTransient(err) != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, !tt.transient, tt.transient)
			}
			for _, s := range tt.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			for _, s := range append(tt.notMsg, "pw@", "s3cr3t") {
				if strings.Contains(err.Error(), s) {
					t.Errorf("message %q shows %q", err, s)
				}
			}
		})
	}
}

func TestStat(t *testing.T) {
	endpoint, backend, _ := startS3(t)
	data := photo(200 << 10)
	putObject(t, backend, "a/b c.jpg", data)
	putObject(t, backend, "big.jpg", photo(2<<20))
	putObject(t, backend, "empty.jpg", nil)
	s3q := "?endpoint=" + endpoint + "&use_path_style=true"
	hs := newHTTPFixture(t, true, data)
	o := New(Options{MaxBytes: 1 << 20, HTTPClient: hs.srv.Client(), Timeout: 5 * time.Second, Backoff: time.Millisecond})
	defer o.Close()

	tests := []struct {
		name string
		ref  string
		size int64
		head []byte
		is   error
	}{
		{name: "local path refused", ref: "/photos/a.jpg", is: ErrBadRef},
		{name: "s3", ref: "s3://bucket/a/b%20c.jpg" + s3q, size: int64(len(data)), head: data[:HeadLen]},
		{name: "s3 empty", ref: "s3://bucket/empty.jpg" + s3q, size: 0, head: []byte{}},
		{name: "s3 over the limit", ref: "s3://bucket/big.jpg" + s3q, size: 2 << 20, is: ErrTooLarge},
		{name: "s3 missing", ref: "s3://bucket/none.jpg" + s3q, is: ErrNotFound},
		{name: "https", ref: hs.srv.URL + "/ok.jpg", size: int64(len(data)), head: data[:HeadLen]},
		{name: "https HEAD refused", ref: hs.srv.URL + "/forbidden.jpg", is: nil, size: -2},
		{name: "https missing", ref: hs.srv.URL + "/missing.jpg", is: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			info, err := o.Stat(ctx, tt.ref)
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tt.size == -2 { // a 403 on HEAD falls back to GET, which is refused too
				if err == nil || IsTransient(err) || !strings.Contains(err.Error(), "HTTP 403") {
					t.Errorf("got %v", err)
				}
				return
			}
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("error %v, want %v", err, tt.is)
				}
				if tt.is == ErrTooLarge && info.Size != tt.size {
					t.Errorf("Size %d, want %d", info.Size, tt.size)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != tt.size || !bytes.Equal(info.Head, tt.head) {
				t.Errorf("got Size %d, %d head bytes; want %d, %d", info.Size, len(info.Head), tt.size, len(tt.head))
			}
		})
	}
	if n := hs.count("/ok.jpg"); n != 2 {
		t.Errorf("https Stat made %d requests, want a HEAD and a ranged GET", n)
	}
}

func TestS3Concurrent(t *testing.T) {
	endpoint, backend, _ := startS3(t)
	for i := range 8 {
		putObject(t, backend, fmt.Sprintf("p%d.jpg", i), photo(1000+i))
	}
	o := New(Options{Backoff: time.Millisecond})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := fmt.Sprintf("s3://bucket/p%d.jpg?use_path_style=true&endpoint=%s", i%8, endpoint)
			got, _, err := readAll(context.Background(), o, ref)
			if err != nil || !bytes.Equal(got, photo(1000+i%8)) {
				t.Errorf("%s: %d bytes, %v", ref, len(got), err)
			}
		}()
	}
	wg.Wait()
	o.mu.Lock()
	n := len(o.buckets)
	o.mu.Unlock()
	if n != 1 {
		t.Errorf("%d buckets cached, want 1 (same bucket, same query in another order)", n)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(context.Background(), fmt.Sprintf("s3://bucket/p0.jpg?endpoint=%s", endpoint)); err == nil {
		t.Error("Open after Close worked")
	}
}

func TestOpenCancelled(t *testing.T) {
	hs := newHTTPFixture(t, true, photo(10))
	o := New(Options{HTTPClient: hs.srv.Client(), Backoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := o.Open(ctx, hs.srv.URL+"/always500.jpg")
	if err == nil || !errors.Is(err, context.Canceled) || IsTransient(err) {
		t.Errorf("got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("backoff ignored the cancellation: %v", time.Since(start))
	}
}

func TestOtherClouds(t *testing.T) {
	for _, tt := range []struct{ ref, key, bad string }{
		{ref: "gs://bkt/a/b.jpg", key: "a/b.jpg"},
		{ref: "GS://bkt/x.png", key: "x.png"},
		{ref: "azblob://container/dir/x.jpg?domain=blob.core.windows.net", key: "dir/x.jpg"},
		{ref: "gs://bkt", bad: "missing object key"},
		{ref: "gs://bkt/dir/", bad: "missing object key"},
		{ref: "gs:///k.jpg", bad: "missing bucket name"},
		{ref: "azblob:///k.jpg", bad: "missing container name"},
		{ref: "azblob://c/k.jpg?protocol=http&domain=example.com", bad: "protocol=http"},
		{ref: "s3://b/k#frag", bad: "fragment"},
	} {
		r, err := parseRef(tt.ref)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("%s: got %v, want an error with %q", tt.ref, err, tt.bad)
			}
			continue
		}
		if err != nil || r.kind != kindBlob || r.key != tt.key {
			t.Errorf("%s: got %+v, %v", tt.ref, r, err)
		}
	}

	// gs:// is not opened here: without usable credentials gcsblob falls
	// back to a client that would send a request to storage.googleapis.com.
	// azblob:// without an account fails before any network call.
	t.Run("azblob without credentials", func(t *testing.T) {
		for _, k := range []string{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
			"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "AZURE_STORAGE_DOMAIN"} {
			t.Setenv(k, "")
		}
		noCloud(t, "azblob://container/a.jpg")
	})
}

// noCloud checks that opening ref fails quickly with a permanent error.
func noCloud(t *testing.T, ref string) {
	t.Helper()
	o := New(Options{Retries: -1})
	defer o.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := o.Open(ctx, ref)
	if err == nil {
		t.Fatal("no error")
	}
	t.Logf("%s: %v", ref, err)
	if !strings.Contains(err.Error(), "photo: "+ref+": cannot open") {
		t.Errorf("unclear error: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestRedactAndIsRemote(t *testing.T) {
	for in, want := range map[string]string{
		"photos/a.jpg":                                         "photos/a.jpg",
		"https://u:p@h.example/a.jpg?sig=x&b":                  "https://REDACTED@h.example/a.jpg?sig=REDACTED&REDACTED",
		"s3://b/k.jpg?endpoint=http://127.0.0.1:9000&region=x": "s3://b/k.jpg?endpoint=REDACTED&region=REDACTED",
		"https://h/a b.jpg#frag":                               "https://h/a b.jpg",
		"https://u:p@h/%zz?tok=abc":                            "https://REDACTED@h/%zz?tok=REDACTED",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for ref, want := range map[string]bool{
		"s3://b/k": true, "GS://b/k": true, "azblob://c/k": true, "https://h/a": true, "http://127.0.0.1/a": true,
		"ftp://h/a": false, "a.jpg": false, "/abs/a.jpg": false, "C:\\a.jpg": false, "": false,
	} {
		if IsRemote(ref) != want {
			t.Errorf("IsRemote(%q) = %v", ref, !want)
		}
	}
}
