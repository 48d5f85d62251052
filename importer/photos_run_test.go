package importer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/testkit"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// noisePhoto encodes a w×h image of noise (large for its size) as format
// (testkit.NoisePhoto).
func noisePhoto(t testing.TB, format string, w, h int) []byte {
	return testkit.NoisePhoto(t, format, w, h)
}

// sentPhoto decodes the photo of a request body.
func sentPhoto(t testing.TB, body []byte) []byte {
	t.Helper()
	var v struct {
		Photo string `json:"photo"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("request body: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(v.Photo)
	if err != nil {
		t.Fatalf("request photo: %v", err)
	}
	return b
}

// TestRunNeverSendsBrokenPhotos: truncated JPEGs and PNGs, small (read
// whole) and large (streamed), are rejected before any request.
func TestRunNeverSendsBrokenPhotos(t *testing.T) {
	f := newFixture(t, 2)
	small := noisePhoto(t, "jpeg", 160, 120) // under 128 KiB: read whole
	big := noisePhoto(t, "jpeg", 800, 600)   // streamed
	if len(big) <= 128<<10 || len(big) > 5<<20 {
		t.Fatalf("big photo of %d bytes", len(big))
	}
	pngPhoto := noisePhoto(t, "png", 120, 90)
	crc := bytes.Clone(pngPhoto)
	crc[len(crc)-30] ^= 0x40
	broken := map[string][]byte{
		"cut-small": small[:len(small)/2],
		"cut-big":   big[:len(big)/2],
		"cut-png":   pngPhoto[:len(pngPhoto)/2],
		"crc-png":   crc,
	}
	for id, data := range broken {
		name := filepath.Join("photos", id+".jpg")
		writeFile(t, filepath.Join(f.dir, name), data)
		f.rows = append(f.rows, mrow{id: id, created: "2021-08-12", photo: name})
	}
	path := f.write(t)
	for _, fix := range []bool{false, true} {
		sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
		st := newStore(t)
		opts := fastOptions()
		opts.FixPhotos = fix
		sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
		if err != nil {
			t.Fatalf("fix %v: %v", fix, err)
		}
		if sum.Rejected != len(broken) || sum.Enrolled+sum.Skipped != 2 {
			t.Errorf("fix %v: summary %+v", fix, sum)
		}
		for id := range broken {
			rec := userRecord(t, st, id)
			if rec.State != store.Rejected || rec.Attempts != 0 || !strings.Contains(rec.Error, "PNG") && !strings.Contains(rec.Error, "JPEG") {
				t.Errorf("fix %v: %s: %+v", fix, id, rec)
			}
			if n := cnt.SentFor(id); n != 0 {
				t.Errorf("fix %v: %s sent %d times", fix, id, n)
			}
		}
		if got := userRecord(t, st, "cut-big").Error; !strings.Contains(got, "truncated JPEG: no end-of-image marker") {
			t.Errorf("cut-big: %q", got)
		}
		if got := userRecord(t, st, "crc-png").Error; !strings.Contains(got, "CRC mismatch") {
			t.Errorf("crc-png: %q", got)
		}
		if n := len(sb.Enrolled()); n != 2 {
			t.Errorf("fix %v: sandbox enrolled %d users, want 2", fix, n)
		}
	}
}

// TestFixPhotosSendsUprightPhotosUnchanged: under FixPhotos an upright JPEG
// (small or streamed) and a PNG reach the API byte for byte, and so does an
// upright JPEG whose header claims 64 megapixels (it is never decoded, as a
// plain run sends it); a rotated one is converted.
func TestFixPhotosSendsUprightPhotosUnchanged(t *testing.T) {
	f := &fixture{dir: t.TempDir()}
	huge := noisePhoto(t, "jpeg", 64, 48)
	sof := bytes.Index(huge, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(huge[sof+5:], 8000) // height
	binary.BigEndian.PutUint16(huge[sof+7:], 8000) // width
	photos := map[string][]byte{
		"small":   noisePhoto(t, "jpeg", 100, 80),
		"big":     noisePhoto(t, "jpeg", 800, 600),
		"png":     noisePhoto(t, "png", 50, 40),
		"64mpix":  huge,
		"rotated": withOrientation(noisePhoto(t, "jpeg", 60, 40), 6),
	}
	for id, data := range photos {
		name := filepath.Join("photos", id+".jpg")
		writeFile(t, filepath.Join(f.dir, name), data)
		f.rows = append(f.rows, mrow{id: id, created: "2021-08-12", photo: name})
	}
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	got := make(map[string][]byte)
	var mu sync.Mutex
	cnt.Hook = func(_ int64, body []byte, w http.ResponseWriter, _ *http.Request) bool {
		id := testkit.UserIDOf(body)
		mu.Lock()
		got[id] = sentPhoto(t, body)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, testkit.SignedSuccess(testKey, testPartner, id))
		return true
	}
	st := newStore(t)
	opts := fastOptions()
	opts.FixPhotos = true
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil || sum.Enrolled != len(photos) {
		t.Fatalf("Run: %v, %+v", err, sum)
	}
	for id, data := range photos {
		same := bytes.Equal(got[id], data)
		if id == "rotated" {
			if same || userRecord(t, st, id).PhotoNote == "" {
				t.Errorf("rotated: sent unchanged")
			}
			continue
		}
		if !same {
			t.Errorf("%s: sent %d bytes, not the %d of the file", id, len(got[id]), len(data))
		}
		if note := userRecord(t, st, id).PhotoNote; note != "" {
			t.Errorf("%s: note %q", id, note)
		}
	}
}

// withOrientation inserts an EXIF segment with orientation o after SOI.
func withOrientation(jpg []byte, o uint16) []byte {
	tiff := []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00")
	binary.BigEndian.PutUint16(tiff[18:], o)
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// submitFunc is a Submitter made of a function.
type submitFunc func(ctx context.Context, u smileid.User) (*smileid.Result, error)

func (f submitFunc) Submit(ctx context.Context, u smileid.User) (*smileid.Result, error) {
	return f(ctx, u)
}

// heldEOF reads data, then holds its end until eof is closed.
type heldEOF struct {
	r   *bytes.Reader
	eof chan struct{}
}

func (h *heldEOF) Read(p []byte) (int, error) {
	if h.r.Len() > 0 {
		return h.r.Read(p)
	}
	<-h.eof
	return 0, io.EOF
}

// TestStopAtEndOfManifestCountsNoPhantomRow stops runs just as the
// manifest ends, many times: the summary never counts more rows than the
// manifest has. (The dispatcher is held handing out its last batch, with
// the end of the manifest waiting behind it, when the stop comes: it then
// sees the stop and the end together.)
func TestStopAtEndOfManifestCountsNoPhantomRow(t *testing.T) {
	const rows = 150
	f := newFixture(t, rows)
	data, err := os.ReadFile(f.write(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan struct{})
		release := make(chan struct{})
		var calls atomic.Int64
		sub := submitFunc(func(ctx context.Context, u smileid.User) (*smileid.Result, error) {
			if calls.Add(1) == 1 {
				close(first)
				<-release
			}
			return &smileid.Result{ResultCode: "0840"}, nil
		})
		src := &heldEOF{r: bytes.NewReader(data), eof: make(chan struct{})}
		rd, err := manifest.NewReader(src, f.dir)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			<-first
			time.Sleep(time.Duration(5+i%4*5) * time.Millisecond) // every row read and planned
			close(src.eof)
			time.Sleep(time.Duration(i%3) * time.Millisecond)
			cancel()
			close(release)
		}()
		opts := fastOptions()
		opts.Workers = 1
		opts.Manifest = "pipe"
		sum, err := importer.Run(ctx, rd, newStore(t), sub, opts)
		cancel()
		if err != nil && !errors.Is(err, importer.ErrInterrupted) {
			t.Fatalf("run %d: %v", i, err)
		}
		n := sum.Enrolled + sum.Skipped + sum.Rejected + sum.Failed + sum.Pending
		if sum.Rows != rows || n != rows {
			t.Fatalf("run %d: summary %+v for a %d-row manifest", i, sum, rows)
		}
	}
}

// TestReopenFailureIsNotARequest: a streamed photo that is gone when a
// retry opens it again ends the row failed, with the one request that was
// sent counted and the outcome that request left (a 429: known).
func TestReopenFailureIsNotARequest(t *testing.T) {
	f := &fixture{dir: t.TempDir()}
	name := filepath.Join("photos", "big.jpg")
	writeFile(t, filepath.Join(f.dir, name), noisePhoto(t, "jpeg", 800, 600))
	f.rows = append(f.rows, mrow{id: "gone", created: "2021-08-12", photo: name})
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	cnt.Hook = func(n int64, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		if err := os.Remove(filepath.Join(f.dir, name)); err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"code":"2201","error":"slow down"}`)
		return true
	}
	st := newStore(t)
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	rec := userRecord(t, st, "gone")
	if sum.Failed != 1 || rec.State != store.Failed || rec.Attempts != 1 || rec.OutcomeUnknown || cnt.Requests() != 1 {
		t.Errorf("summary %+v, record %+v, %d requests", sum, rec, cnt.Requests())
	}
	if !strings.Contains(rec.Error, "reading the photo failed") {
		t.Errorf("reason %q", rec.Error)
	}
}

// TestForeignUserAnswerStopsRun: a signed success for another user is not
// this row's answer: the run stops (as for any answer that is not Smile
// ID's) and the row stays pending.
func TestForeignUserAnswerStopsRun(t *testing.T) {
	f := newFixture(t, 1)
	path := f.write(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, testkit.SignedSuccess(testKey, testPartner, "someone-else"))
	}))
	defer hs.Close()
	st := newStore(t)
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
	var fe *smileid.ForeignAnswerError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), `"someone-else"`) {
		t.Fatalf("Run = %v, want a foreign answer", err)
	}
	rec := userRecord(t, st, f.rows[0].id)
	if sum.Pending != 1 || sum.Enrolled != 0 || rec.State != store.Pending {
		t.Errorf("summary %+v, record %+v", sum, rec)
	}
}

// TestRemotePhotoUploadGetsTheGrace: a remote photo is fetched by its
// request, under the requests' context: an interrupt while it downloads
// lets the request finish within the grace.
func TestRemotePhotoUploadGetsTheGrace(t *testing.T) {
	photo := noisePhoto(t, "jpeg", 400, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fetches atomic.Int64
	photos := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(photo)))
		w.Write(photo[:len(photo)/2])
		w.(http.Flusher).Flush()
		cancel() // the interrupt comes while the photo is on its way
		time.Sleep(100 * time.Millisecond)
		w.Write(photo[len(photo)/2:])
	}))
	defer photos.Close()
	f := &fixture{dir: t.TempDir()}
	f.rows = append(f.rows, mrow{id: "remote", created: "2021-08-12", photo: photos.URL + "/p.jpg"})
	path := f.write(t)
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	opts := fastOptions()
	opts.PhotoHTTPClient = photos.Client()
	_, err := run(t, ctx, path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if !errors.Is(err, importer.ErrInterrupted) {
		t.Fatalf("Run = %v, want interrupted", err)
	}
	if rec := userRecord(t, st, "remote"); rec.State != store.Enrolled || fetches.Load() != 1 {
		t.Errorf("record %+v after %d fetches", rec, fetches.Load())
	}
	if info := sb.Photos()["remote"]; info.Bytes != int64(len(photo)) {
		t.Errorf("sandbox got %+v", info)
	}
}
