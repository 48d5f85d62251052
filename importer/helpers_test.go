package importer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/sandbox"
	"bulkenroll/importer/signature"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Credentials shared by the tests. The key is distinctive so that a leak of
// it into any message can be searched for.
const (
	testPartner = "partner-77"
	testKey     = "KEY-zq8Xv-LEAKCANARY-31337"
)

// photoBytes returns a small, valid JPEG or PNG image whose pixels depend on
// seed, so that photos of different users differ.
func photoBytes(t testing.TB, format string, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + i*7)
	}
	img.Set(0, 0, color.RGBA{R: byte(seed), G: byte(seed >> 8), B: 1, A: 255})
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	default:
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatalf("encoding a %s: %v", format, err)
	}
	return buf.Bytes()
}

// writeFile writes data to path, creating its folder.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sha256File returns the hex SHA-256 of a file's bytes.
func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mrow is one manifest row as written.
type mrow struct {
	id, created, photo string
}

// fixture is a folder holding a manifest and its photos.
type fixture struct {
	dir  string
	rows []mrow
}

// newFixture makes n users user-0001.. with a JPEG (odd) or PNG (even) photo
// each, all valid, under a fresh temporary folder.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	for i := 1; i <= n; i++ {
		f.addUser(t, fmt.Sprintf("user-%04d", i), i)
	}
	return f
}

// addUser adds a valid row with a fresh photo.
func (f *fixture) addUser(t testing.TB, id string, seed int) {
	t.Helper()
	format, ext := "jpeg", ".jpg"
	if seed%2 == 0 {
		format, ext = "png", ".png"
	}
	name := filepath.Join("photos", fmt.Sprintf("p%04d%s", seed, ext))
	writeFile(t, filepath.Join(f.dir, name), photoBytes(t, format, seed))
	f.rows = append(f.rows, mrow{id: id, created: "2021-08-12T15:14:43Z", photo: name})
}

// ids returns the user IDs of the fixture's rows, in order.
func (f *fixture) ids() []string {
	out := make([]string, len(f.rows))
	for i, r := range f.rows {
		out[i] = r.id
	}
	return out
}

// photoPath returns the absolute path of row i's photo.
func (f *fixture) photoPath(i int) string { return filepath.Join(f.dir, f.rows[i].photo) }

// write writes the manifest (header first, so row i is on line i+2) and
// returns its path.
func (f *fixture) write(t testing.TB) string {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"user_id", "user_created_at", "photo"})
	for _, r := range f.rows {
		_ = w.Write([]string{r.id, r.created, r.photo})
	}
	w.Flush()
	path := filepath.Join(f.dir, "manifest.csv")
	writeFile(t, path, buf.Bytes())
	return path
}

// openManifest opens a manifest and closes it when the test ends.
func openManifest(t testing.TB, path string) *manifest.Reader {
	t.Helper()
	rd, err := manifest.Open(path)
	if err != nil {
		t.Fatalf("opening the manifest: %v", err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}

// newStore opens a fresh store in a temporary folder, closed when the test ends.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bulkenroll.db"), store.Options{})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return st
}

// newSandbox starts the emulator with the test credentials merged into opts,
// behind a counter of the requests that reach it.
func newSandbox(t testing.TB, opts sandbox.Options) (*sandbox.Server, *counter, *httptest.Server) {
	t.Helper()
	if opts.PartnerID == "" {
		opts.PartnerID = testPartner
	}
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	c := &counter{next: sb}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	return sb, c, hs
}

// counter is an http.Handler that counts requests and their user IDs before
// handing them to next.
type counter struct {
	next http.Handler
	// hook, if set, is called with each request's number (from 1) and body
	// before next sees it; it may answer itself by returning true.
	hook func(n int64, body []byte, w http.ResponseWriter, r *http.Request) bool

	n     atomic.Int64
	mu    sync.Mutex
	users map[string]int
	times []time.Time
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := c.n.Add(1)
	id := userIDOf(body)
	c.mu.Lock()
	if c.users == nil {
		c.users = make(map[string]int)
	}
	c.users[id]++
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
	if c.hook != nil && c.hook(n, body, w, r) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.next.ServeHTTP(w, r)
}

// requests returns how many requests arrived.
func (c *counter) requests() int { return int(c.n.Load()) }

// sentFor returns how many requests carried user id.
func (c *counter) sentFor(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.users[id]
}

// arrivals returns the arrival times of the requests.
func (c *counter) arrivals() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

// userIDOf pulls user_id out of a request body without trusting it to be JSON.
func userIDOf(body []byte) string {
	var v struct {
		UserID string `json:"user_id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.UserID
}

// newClient returns a client for base with the test credentials; mod may
// change the configuration and options first.
func newClient(t testing.TB, base string, mod func(*importer.Config, *importer.ClientOptions)) *importer.Client {
	t.Helper()
	cfg := importer.Config{PartnerID: testPartner, APIKey: testKey, BaseURL: base}
	opts := importer.ClientOptions{Workers: 4, Timeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg, &opts)
	}
	c, err := importer.NewClient(cfg, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// fastOptions are run options with short retry waits.
func fastOptions() importer.Options {
	return importer.Options{
		Workers:     4,
		Retries:     3,
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
		Grace:       5 * time.Second,
		// The tests' manifests are files: an early stop counts their unread rows.
		ManifestIsFile: true,
	}
}

// run imports the manifest at path into st through sub.
func run(t testing.TB, ctx context.Context, path string, st *store.Store, sub importer.Submitter, opts importer.Options) (importer.Summary, error) {
	t.Helper()
	rd := openManifest(t, path)
	if opts.Manifest == "" {
		opts.Manifest = path
	}
	return importer.Run(ctx, rd, st, sub, opts)
}

// records returns every record of st in key order.
func records(t testing.TB, st *store.Store) []store.Record {
	t.Helper()
	var out []store.Record
	if err := st.Each("", func(r store.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return out
}

// userRecord returns the record of user id, failing the test if it is absent.
func userRecord(t testing.TB, st *store.Store, id string) store.Record {
	t.Helper()
	rec, ok, err := st.Get(id)
	if err != nil || !ok {
		t.Fatalf("Get(%q) = found %v, %v", id, ok, err)
	}
	return rec
}

// recordOrNone returns the record of user id; a row the run never reached
// has none (the zero record, pending with no attempt).
func recordOrNone(t testing.TB, st *store.Store, id string) store.Record {
	t.Helper()
	rec, ok, err := st.Get(id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	if !ok {
		return store.Record{UserID: id, State: store.Pending}
	}
	return rec
}

// wantSummary compares the counts of a summary, ignoring Seconds and RunID.
func wantSummary(t testing.TB, got, want importer.Summary) {
	t.Helper()
	got.Seconds, got.RunID, want.Seconds, want.RunID = 0, 0, 0, 0
	got.Stats, want.Stats = importer.Stats{}, importer.Stats{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("summary = %+v\nwant      %+v", got, want)
	}
}

// readCSV parses CSV text.
func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV %q: %v", b, err)
	}
	return recs
}

// signedSuccess is a 200 answer for user, signed with key.
func signedSuccess(key, partner, user string) string {
	ts := signature.Timestamp(time.Now())
	b, _ := json.Marshal(map[string]any{
		"ResultCode": "0840", "ResultText": "Enroll User", "SmileJobID": "0000001234",
		"PartnerParams": map[string]any{"user_id": user, "job_type": 4},
		"timestamp":     ts, "signature": signature.Sign(key, partner, ts),
	})
	return string(b)
}

// flaky is an http.RoundTripper that fails chosen requests. For request
// number n (from 1), before(n) may return an error to fail it without
// sending it; after(n) may return an error to fail it after the server
// answered (the outcome is then unknown to the caller, as with a dropped
// connection).
type flaky struct {
	base          http.RoundTripper
	before, after func(n int64) error
	n             atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (f *flaky) RoundTrip(req *http.Request) (*http.Response, error) {
	n := f.n.Add(1)
	if f.before != nil {
		if err := f.before(n); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	resp, err := f.base.RoundTrip(req)
	if err != nil || f.after == nil {
		return resp, err
	}
	if aerr := f.after(n); aerr != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, aerr
	}
	return resp, nil
}

// resetErr looks like a connection reset by the peer.
func resetErr() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mustAs is errors.As that fails the test when err is not a T.
func mustAs[T error](t testing.TB, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T) is not a %T", err, err, target)
	}
	return target
}
