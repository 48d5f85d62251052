//go:build unix

package main

// End-to-end tests of photos where they live (local files, an S3-compatible
// store, plain-http loopback URLs) and of --fix-photos, run against the
// sandbox, whose ledger (GET /sandbox/state, Photos) records the format,
// size and dimensions of every photo it enrolled.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/testkit"
)

// Made-up S3 credentials, passed to the child only.
const (
	photosAWSKeyID  = "AKIDPHOTOSTEST"
	photosAWSSecret = "photos-secret-key-do-not-print"
	photosBucket    = "photos"
	// photosLimit is the photo limit of the --fix-photos tests (passed as
	// --max-photo-bytes): a quarter of Smile ID's 5 MiB, with photos a
	// quarter of the pixels they would need over 5 MiB, so that the same
	// conversions happen on a quarter of the work.
	photosLimit = 5 << 20 / 4
)

// photosHit is one request a photo server received.
type photosHit struct {
	Method, Path, Range string
	Bytes               int64
}

// photosLog records the requests of a photo server.
type photosLog struct {
	mu   sync.Mutex
	hits []photosHit
}

func (l *photosLog) add(h photosHit) {
	l.mu.Lock()
	l.hits = append(l.hits, h)
	l.mu.Unlock()
}

// Take returns the requests so far and forgets them.
func (l *photosLog) Take() []photosHit {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hits
	l.hits = nil
	return h
}

// countingWriter counts the body bytes written.
type photosCountingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *photosCountingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// photosServe serves h on loopback, logging every request.
func photosServe(t testing.TB, h http.Handler) (string, *photosLog) {
	t.Helper()
	l := &photosLog{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &photosCountingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		l.add(photosHit{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Bytes: cw.n})
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, l
}

// photosS3 is an in-memory S3-compatible store (gofakes3) on loopback.
type photosS3 struct {
	URL     string
	backend *s3mem.Backend
	Log     *photosLog
}

func photosStartS3(t testing.TB) *photosS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(photosBucket); err != nil {
		t.Fatal(err)
	}
	u, l := photosServe(t, gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	return &photosS3{URL: u, backend: backend, Log: l}
}

// Put stores data at key and returns the s3:// reference of the object.
func (s *photosS3) Put(t testing.TB, key string, data []byte) string {
	t.Helper()
	if _, err := s.backend.PutObject(photosBucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	return s.Ref(key)
}

// Ref is the s3:// reference of key, whether it exists or not.
func (s *photosS3) Ref(key string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&use_path_style=true&region=us-east-1", photosBucket, key, s.URL)
}

// photosWeb serves photos over plain http on loopback; a path in flaky
// answers 503 that many times before it serves its photo.
type photosWeb struct {
	URL   string
	Log   *photosLog
	mu    sync.Mutex
	files map[string][]byte
	flaky map[string]int
}

func photosStartWeb(t testing.TB) *photosWeb {
	t.Helper()
	w := &photosWeb{files: map[string][]byte{}, flaky: map[string]int{}}
	w.URL, w.Log = photosServe(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		data, ok := w.files[r.URL.Path]
		fail := w.flaky[r.URL.Path] > 0
		if fail {
			w.flaky[r.URL.Path]--
		}
		w.mu.Unlock()
		switch {
		case fail:
			http.Error(rw, "try later", http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(rw, r)
		default:
			http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(data))
		}
	}))
	return w
}

// Put serves data at path and returns its URL.
func (w *photosWeb) Put(path string, data []byte) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files[path] = data
	return w.URL + path
}

// Flake makes path answer 503 n times from now on.
func (w *photosWeb) Flake(path string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flaky[path] = n
}

// photosCLI is e2eNewCLI with the S3 credentials in the child's environment.
func photosCLI(t testing.TB, sandboxURL string) *e2eCLI {
	t.Helper()
	c := e2eNewCLI(t, sandboxURL)
	c.Env["AWS_ACCESS_KEY_ID"] = photosAWSKeyID
	c.Env["AWS_SECRET_ACCESS_KEY"] = photosAWSSecret
	c.Env["AWS_REGION"] = "us-east-1"
	c.Env["AWS_EC2_METADATA_DISABLED"] = "true"
	c.Env["AWS_CONFIG_FILE"] = filepath.Join(c.Dir, "no-aws-config")
	c.Env["AWS_SHARED_CREDENTIALS_FILE"] = filepath.Join(c.Dir, "no-aws-credentials")
	return c
}

// photosRow is one row of a test manifest and what the test expects of it.
type photosRow struct {
	id, photo string
	data      []byte // the photo's bytes, as stored
	reject    string // a word the rejection must contain; "" if enrolled
}

func photosWriteManifest(t testing.TB, path string, rows []photosRow) {
	t.Helper()
	recs := [][]string{{"user_id", "user_created_at", "photo"}}
	for _, r := range rows {
		recs = append(recs, []string{r.id, "2021-08-12T15:14:43Z", r.photo})
	}
	e2eWriteCSV(t, path, recs)
}

// photosNoSecrets fails the test if text holds a credential or a URL's
// query value.
func photosNoSecrets(t testing.TB, where, text string) {
	t.Helper()
	for _, s := range []string{photosAWSSecret, "sig=TOPSECRET", "TOPSECRET"} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret %q:\n%s", where, s, text)
		}
	}
}

// photosGETs returns the GET requests among hits whose path is in paths.
func photosGETs(hits []photosHit, paths map[string]bool) []photosHit {
	var out []photosHit
	for _, h := range hits {
		if h.Method == http.MethodGet && paths[h.Path] {
			out = append(out, h)
		}
	}
	return out
}

// TestPhotosMixedSources imports a manifest mixing local files, objects in
// an S3-compatible store and plain-http loopback URLs, with a missing key, a
// 404 and a server that answers 503 twice; then runs again and fetches
// nothing for the enrolled rows; then validates the manifest without
// downloading any photo.
func TestPhotosMixedSources(t *testing.T) {
	t.Parallel()
	s3 := photosStartS3(t)
	web := photosStartWeb(t)
	sb := e2eStartSandbox(t)
	c := photosCLI(t, sb.URL)

	var rows []photosRow
	add := func(id, photo string, data []byte, reject string) {
		rows = append(rows, photosRow{id: id, photo: photo, data: data, reject: reject})
	}
	for i := range 3 {
		d := e2eJPEG(t, i)
		if i == 1 {
			d = e2ePNG(t, i)
		}
		p := fmt.Sprintf("local/p%d.img", i)
		e2eWriteFile(t, filepath.Join(c.Dir, p), d)
		add(fmt.Sprintf("local-%d", i), p, d, "")
	}
	for i := range 4 {
		d := e2eJPEG(t, 10+i)
		if i%2 == 1 {
			d = e2ePNG(t, 10+i)
		}
		add(fmt.Sprintf("s3-%d", i), s3.Put(t, fmt.Sprintf("users/u%d.img", i), d), d, "")
	}
	add("s3-missing", s3.Ref("users/missing.jpg"), nil, "s3://photos/users/missing.jpg")
	for i := range 3 {
		d := e2eJPEG(t, 20+i)
		add(fmt.Sprintf("web-%d", i), web.Put(fmt.Sprintf("/web/w%d.jpg", i), d), d, "")
	}
	add("web-404", web.URL+"/web/gone.jpg?sig=TOPSECRET", nil, "/web/gone.jpg")
	flaky := e2eJPEG(t, 30)
	add("web-flaky", web.Put("/web/flaky.jpg", flaky), flaky, "")
	web.Flake("/web/flaky.jpg", 2)
	manifestPath := filepath.Join(c.Dir, "mixed.csv")
	photosWriteManifest(t, manifestPath, rows)

	var enrolled []string
	remotePaths := map[string]bool{} // server paths of the enrolled remote photos
	for _, r := range rows {
		if r.reject == "" {
			enrolled = append(enrolled, r.id)
			if strings.HasPrefix(r.photo, "s3://") {
				remotePaths["/"+photosBucket+"/"+strings.SplitN(strings.TrimPrefix(r.photo, "s3://"+photosBucket+"/"), "?", 2)[0]] = true
			} else if strings.HasPrefix(r.photo, "http://") {
				remotePaths[strings.TrimPrefix(r.photo, web.URL)] = true
			}
		}
	}

	r := c.Run("run", "--manifest", manifestPath, "--workers", "4", "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 1) // two rows rejected
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: len(rows), Enrolled: len(enrolled), Rejected: 2})
	photosNoSecrets(t, "run's output", r.Stdout+r.Stderr)

	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, enrolled)
	for _, row := range rows {
		if row.reject != "" {
			continue
		}
		got, ok := st.Photos[row.id]
		wantFormat := "jpeg"
		if bytes.HasPrefix(row.data, []byte("\x89PNG")) {
			wantFormat = "png"
		}
		if !ok || got.Bytes != int64(len(row.data)) || got.Format != wantFormat || got.Width != testkit.PhotoSide || got.Height != testkit.PhotoSide {
			t.Errorf("ledger photo of %s: %+v (present %v), want a %dx%[4]d %s of %d bytes", row.id, got, ok, testkit.PhotoSide, wantFormat, len(row.data))
		}
	}
	// The flaky URL was asked three times by the run (503, 503, 200).
	firstHits := web.Log.Take()
	flakyGETs := 0
	for _, h := range firstHits {
		if h.Path == "/web/flaky.jpg" {
			flakyGETs++
		}
	}
	if flakyGETs != 3 {
		t.Errorf("the flaky URL got %d requests, want 3 (two 503s, then the photo): %+v", flakyGETs, firstHits)
	}
	s3.Log.Take()

	recs := e2eReportByUser(t, c)
	for _, row := range rows {
		rec := recs[row.id]
		switch {
		case row.reject == "" && rec.State != "enrolled":
			t.Errorf("report: %s is %s (%s), want enrolled", row.id, rec.State, rec.Error)
		case row.reject != "" && (rec.State != "rejected" || !strings.Contains(rec.Error, row.reject)):
			t.Errorf("report: %s is %s (%q), want rejected naming %q", row.id, rec.State, rec.Error, row.reject)
		}
		photosNoSecrets(t, "report of "+row.id, rec.Error)
	}
	if e := recs["s3-missing"].Error; !strings.Contains(e, "endpoint=REDACTED") {
		t.Errorf("the missing key's reason %q does not show the URL's query redacted", e)
	}

	// Again: the enrolled rows are skipped without fetching their photos.
	r = c.Run("run", "--manifest", manifestPath, "--workers", "4", "--rate", "0", "--json", "--no-progress")
	sum := e2eParseSummary(t, r)
	if sum.Enrolled != 0 || sum.Skipped < len(enrolled) || sum.Skipped+sum.Rejected != len(rows) {
		t.Errorf("re-run summary %+v, want the %d enrolled rows skipped and the rest rejected", sum, len(enrolled))
	}
	photosNoSecrets(t, "the re-run's output", r.Stdout+r.Stderr)
	if gets := photosGETs(append(s3.Log.Take(), web.Log.Take()...), remotePaths); len(gets) != 0 {
		t.Errorf("the re-run fetched photos of enrolled rows: %+v", gets)
	}
	if st2 := sb.State(t); st2.Stats.Enrolled != len(enrolled) || st2.Stats.AlreadyEnrolled != 0 {
		t.Errorf("after the re-run the sandbox has stats %+v, want %d enrollments and no 2209", st2.Stats, len(enrolled))
	}

	// validate: exactly the two missing photos, in the manifest's order,
	// and no photo downloaded (HEAD and ranged reads of the first bytes).
	web.Flake("/web/flaky.jpg", 2)
	v := c.Run("validate", "--manifest", manifestPath, "--workers", "4", "--json")
	e2eWantCode(t, v, 1)
	photosNoSecrets(t, "validate's output", v.Stdout+v.Stderr)
	var got struct {
		Problems []problem `json:"problems"`
		Rows     int       `json:"rows"`
		Valid    int       `json:"valid"`
		Invalid  int       `json:"invalid"`
	}
	if err := json.Unmarshal([]byte(v.Stdout), &got); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, v)
	}
	var wantIDs, gotIDs []string
	for _, row := range rows {
		if row.reject != "" {
			wantIDs = append(wantIDs, row.id)
		}
	}
	for i, p := range got.Problems {
		gotIDs = append(gotIDs, p.UserID)
		if i < len(wantIDs) {
			want := rows[slicesIndexRow(rows, wantIDs[i])].reject
			if !strings.Contains(p.Reason, want) || p.Field != "photo" {
				t.Errorf("validate: problem %+v, want field photo naming %q", p, want)
			}
		}
	}
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") || got.Rows != len(rows) || got.Invalid != 2 {
		t.Errorf("validate found %v (rows %d, invalid %d), want %v in manifest order", gotIDs, got.Rows, got.Invalid, wantIDs)
	}
	for _, h := range append(s3.Log.Take(), web.Log.Take()...) {
		switch {
		case h.Method == http.MethodHead:
		case h.Method == http.MethodGet && h.Range != "" && h.Bytes <= 512:
		case h.Method == http.MethodGet && h.Bytes == 0:
		default:
			t.Errorf("validate downloaded more than a photo's first bytes: %+v", h)
		}
	}
}

func slicesIndexRow(rows []photosRow, id string) int {
	for i, r := range rows {
		if r.id == id {
			return i
		}
	}
	return -1
}

// --- photos that need fixing ---

// photosBig holds the large photos, made once per test binary.
var photosBig struct {
	once             sync.Once
	jpeg, png, third []byte
}

// photosNoise is an opaque image of random pixels: JPEG and PNG compress
// it badly, so it stands in for a large detailed photo.
func photosNoise(w, h int, seed uint64) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		v := r.Uint32()
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = uint8(v), uint8(v>>8), uint8(v>>16), 255
	}
	return m
}

// photosBigPhotos returns a JPEG (1000x750, about 1.5 MB) and a PNG
// (750x625, about 1.4 MB) over photosLimit, and a 1000x750 JPEG that a small
// --max-photo-bytes forces to be downscaled.
func photosBigPhotos(t testing.TB) (bigJPEG, bigPNG, mid []byte) {
	t.Helper()
	photosBig.once.Do(func() {
		var b bytes.Buffer
		jpeg.Encode(&b, photosNoise(1000, 750, 1), &jpeg.Options{Quality: 100})
		photosBig.jpeg = bytes.Clone(b.Bytes())
		b.Reset()
		(&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, photosNoise(750, 625, 2))
		photosBig.png = bytes.Clone(b.Bytes())
		b.Reset()
		jpeg.Encode(&b, photosNoise(1000, 750, 3), &jpeg.Options{Quality: 100})
		photosBig.third = bytes.Clone(b.Bytes())
	})
	if len(photosBig.jpeg) <= photosLimit || len(photosBig.png) <= photosLimit {
		t.Fatalf("the oversize photos are %d and %d bytes, not over %d", len(photosBig.jpeg), len(photosBig.png), photosLimit)
	}
	return photosBig.jpeg, photosBig.png, photosBig.third
}

// photosPattern is a small opaque image with a distinct corner.
func photosPattern(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255}
			if x < w/4 && y < h/4 {
				c = color.RGBA{255, 0, 0, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

func photosEncode(t testing.TB, enc func(io.Writer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// photosExifJPEG is a w x h JPEG with an APP1 Exif segment (big-endian)
// whose IFD0 gives orientation o.
func photosExifJPEG(t testing.TB, w, h int, o uint16) []byte {
	t.Helper()
	jpg := photosEncode(t, func(wr io.Writer) error { return jpeg.Encode(wr, photosPattern(w, h), &jpeg.Options{Quality: 90}) })
	tiffData := []byte("MM\x00*")
	tiffData = binary.BigEndian.AppendUint32(tiffData, 8)
	tiffData = binary.BigEndian.AppendUint16(tiffData, 1) // one entry
	tiffData = binary.BigEndian.AppendUint16(tiffData, 0x0112)
	tiffData = binary.BigEndian.AppendUint16(tiffData, 3) // SHORT
	tiffData = binary.BigEndian.AppendUint32(tiffData, 1)
	tiffData = binary.BigEndian.AppendUint16(tiffData, o)
	tiffData = binary.BigEndian.AppendUint16(tiffData, 0)
	tiffData = binary.BigEndian.AppendUint32(tiffData, 0) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiffData...)
	seg := binary.BigEndian.AppendUint16([]byte{0xFF, 0xE1}, uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// photosBombPNG is a PNG signature and IHDR (valid CRC) claiming w x h.
func photosBombPNG(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, 13)
	chunk := []byte("IHDR")
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 6, 0, 0, 0)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// photosWholePNG ends a PNG's signature and IHDR with an IDAT chunk of
// data and IEND, each with its CRC: a PNG whole in structure.
func photosWholePNG(head, data []byte) []byte {
	b := bytes.Clone(head)
	for _, c := range []struct {
		typ  string
		data []byte
	}{{"IDAT", data}, {"IEND", nil}} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.data)))
		chunk := append([]byte(c.typ), c.data...)
		b = append(b, chunk...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
	}
	return b
}

// photosFixCase is one photo of the --fix-photos manifest.
type photosFixCase struct {
	id, file string
	data     []byte
	// w, h are the dimensions Smile ID must receive (0: not checked beyond
	// the longer side being at least 640).
	w, h int
	// note: words photo_note must contain ("" for a photo sent unchanged).
	note []string
	// reject: words the rejection must contain with --fix-photos.
	reject []string
	// asIs: without --fix-photos, "" if sent unchanged, else words of the
	// rejection.
	asIs []string
}

func photosFixCases(t *testing.T) []photosFixCase {
	t.Helper()
	webp, err := os.ReadFile("importer/photofix/testdata/pattern-lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	wcfg, _, err := image.DecodeConfig(bytes.NewReader(webp))
	if err != nil {
		// image/webp is not registered here; read the VP8 frame size.
		wcfg.Width, wcfg.Height = photosWebPSize(t, webp)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 90, 70), palette.Plan9)
	for y := range 70 {
		for x := range 90 {
			pal.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 3), 60, 255})
		}
	}
	small := e2eJPEG(t, 5)
	cases := []photosFixCase{
		{id: "fix-small", file: "small.jpg", data: small, w: testkit.PhotoSide, h: testkit.PhotoSide},
		{id: "fix-webp", file: "p.webp", data: webp, w: wcfg.Width, h: wcfg.Height,
			note: []string{"converted WebP -> JPEG"}, asIs: []string{"not a JPEG or PNG", "a WebP image"}},
		{id: "fix-gif", file: "p.gif", data: photosEncode(t, func(w io.Writer) error { return gif.Encode(w, pal, nil) }), w: 90, h: 70,
			note: []string{"converted GIF -> JPEG"}, asIs: []string{"not a JPEG or PNG", "a GIF image"}},
		{id: "fix-bmp", file: "p.bmp", data: photosEncode(t, func(w io.Writer) error { return bmp.Encode(w, photosPattern(100, 60)) }), w: 100, h: 60,
			note: []string{"converted BMP -> JPEG"}, asIs: []string{"not a JPEG or PNG", "a BMP image"}},
		{id: "fix-tiff", file: "p.tiff", data: photosEncode(t, func(w io.Writer) error { return tiff.Encode(w, photosPattern(64, 48), nil) }), w: 64, h: 48,
			note: []string{"converted TIFF -> JPEG"}, asIs: []string{"not a JPEG or PNG", "a TIFF image"}},
		{id: "fix-exif6", file: "exif6.jpg", data: photosExifJPEG(t, 120, 80, 6), w: 80, h: 120,
			note: []string{"rotated (EXIF orientation 6)", "re-encoded JPEG"}},
		{id: "fix-heic", file: "p.heic", data: append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), bytes.Repeat([]byte{0}, 200)...),
			reject: []string{"HEIC"}, asIs: []string{"not a JPEG or PNG", "HEIC"}},
		// A bomb's header followed by junk that takes it over the size
		// limit, so that the worker hands it to photofix (see
		// TestPhotosFixSmallBomb for one under the limit).
		{id: "fix-bomb", file: "bomb.png", data: photosWholePNG(photosBombPNG(100_000, 100_000), make([]byte, photosLimit)),
			reject: []string{"100000x100000", "megapixel"}, asIs: []string{"limit"}},
	}
	if !testing.Short() {
		bigJPEG, bigPNG, _ := photosBigPhotos(t)
		cases = append(cases,
			photosFixCase{id: "fix-bigjpeg", file: "big.jpg", data: bigJPEG, note: []string{"re-encoded JPEG q"}, asIs: []string{"limit"}},
			photosFixCase{id: "fix-bigpng", file: "big.png", data: bigPNG, note: []string{"converted PNG -> JPEG", "re-encoded JPEG q"}, asIs: []string{"limit"}},
		)
	}
	return cases
}

// photosWebPSize reads the canvas size of a simple lossy (VP8) or lossless
// (VP8L) WebP.
func photosWebPSize(t testing.TB, b []byte) (int, int) {
	t.Helper()
	if len(b) < 30 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		t.Fatalf("not a WebP")
	}
	switch string(b[12:16]) {
	case "VP8 ":
		return int(binary.LittleEndian.Uint16(b[26:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[28:]) & 0x3fff)
	case "VP8L":
		v := binary.LittleEndian.Uint32(b[21:])
		return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1
	}
	t.Fatalf("WebP chunk %q not handled", b[12:16])
	return 0, 0
}

// photosWantJPEGInLedger checks a converted photo in the sandbox's ledger.
func photosWantJPEGInLedger(t *testing.T, st sandbox.State, id string, w, h int, limit int64) {
	t.Helper()
	p, ok := st.Photos[id]
	switch {
	case !ok:
		t.Errorf("ledger: no photo for %s", id)
	case p.Format != "jpeg" || p.ConfigError != "":
		t.Errorf("ledger: %s got %+v, want a valid JPEG", id, p)
	case p.Bytes > limit:
		t.Errorf("ledger: %s got %d bytes, over %d", id, p.Bytes, limit)
	case w > 0 && (p.Width != w || p.Height != h):
		t.Errorf("ledger: %s got %dx%d, want %dx%d", id, p.Width, p.Height, w, h)
	case w == 0 && max(p.Width, p.Height) < 640:
		t.Errorf("ledger: %s got %dx%d, longer side under 640", id, p.Width, p.Height)
	}
}

// TestPhotosFixPhotos runs --fix-photos on one photo of each kind Smile ID
// would refuse, plus an oversize photo in S3, and checks what the sandbox
// received; then runs the same manifest without --fix-photos.
func TestPhotosFixPhotos(t *testing.T) {
	t.Parallel()
	cases := photosFixCases(t)
	dir := t.TempDir()
	s3 := photosStartS3(t)
	var rows []photosRow
	for _, fc := range cases {
		e2eWriteFile(t, filepath.Join(dir, fc.file), fc.data)
		rows = append(rows, photosRow{id: fc.id, photo: filepath.Join(dir, fc.file), data: fc.data})
	}
	hashes := map[string]string{}
	for _, fc := range cases {
		hashes[fc.file] = e2eSHA256(t, filepath.Join(dir, fc.file))
	}
	if !testing.Short() {
		bigJPEG, _, _ := photosBigPhotos(t)
		rows = append(rows, photosRow{id: "fix-s3big", photo: s3.Put(t, "big/remote.jpg", bigJPEG), data: bigJPEG})
	}
	manifestPath := filepath.Join(dir, "fix.csv")
	photosWriteManifest(t, manifestPath, rows)

	t.Run("fix", func(t *testing.T) {
		sb := e2eStartSandbox(t)
		c := photosCLI(t, sb.URL)
		r := c.Run("run", "--manifest", manifestPath, "--fix-photos", "--max-photo-bytes", fmt.Sprint(photosLimit), "--workers", "4", "--rate", "0", "--json", "--no-progress")
		e2eWantCode(t, r, 1)
		var enrolled []string
		for _, row := range rows {
			if row.id != "fix-heic" && row.id != "fix-bomb" {
				enrolled = append(enrolled, row.id)
			}
		}
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: len(rows), Enrolled: len(enrolled), Rejected: 2})
		st := sb.State(t)
		e2eWantEnrolledOnce(t, st, enrolled)
		recs := e2eReportByUser(t, c)
		for _, fc := range cases {
			rec := recs[fc.id]
			if fc.reject != nil {
				if rec.State != "rejected" {
					t.Errorf("%s is %s, want rejected", fc.id, rec.State)
				}
				for _, w := range fc.reject {
					if !strings.Contains(rec.Error, w) {
						t.Errorf("%s rejected with %q, want it to say %q", fc.id, rec.Error, w)
					}
				}
				continue
			}
			if rec.State != "enrolled" {
				t.Errorf("%s is %s (%s), want enrolled", fc.id, rec.State, rec.Error)
				continue
			}
			if fc.note == nil {
				if rec.PhotoNote != "" || st.Photos[fc.id].Bytes != int64(len(fc.data)) {
					t.Errorf("%s: note %q, %d bytes received; want the photo sent unchanged (%d bytes)", fc.id, rec.PhotoNote, st.Photos[fc.id].Bytes, len(fc.data))
				}
				continue
			}
			for _, w := range fc.note {
				if !strings.Contains(rec.PhotoNote, w) {
					t.Errorf("%s: photo_note %q lacks %q", fc.id, rec.PhotoNote, w)
				}
			}
			photosWantJPEGInLedger(t, st, fc.id, fc.w, fc.h, photosLimit)
		}
		if !testing.Short() {
			if note := recs["fix-s3big"].PhotoNote; !strings.Contains(note, "re-encoded JPEG q") || !strings.Contains(note, "MiB ->") {
				t.Errorf("fix-s3big: photo_note %q, want a re-encoding from MiB", note)
			}
			photosWantJPEGInLedger(t, st, "fix-s3big", 1000, 750, photosLimit)
		}
		for _, fc := range cases {
			if got := e2eSHA256(t, filepath.Join(dir, fc.file)); got != hashes[fc.file] {
				t.Errorf("%s was changed by the run", fc.file)
			}
		}
		photosNoSecrets(t, "run's output", r.Stdout+r.Stderr)
	})

	t.Run("as-is", func(t *testing.T) {
		sb := e2eStartSandbox(t)
		c := photosCLI(t, sb.URL)
		r := c.Run("run", "--manifest", manifestPath, "--max-photo-bytes", fmt.Sprint(photosLimit), "--workers", "4", "--rate", "0", "--json", "--no-progress")
		e2eWantCode(t, r, 1)
		recs := e2eReportByUser(t, c)
		st := sb.State(t)
		var enrolled []string
		for _, fc := range cases {
			rec := recs[fc.id]
			if fc.asIs == nil {
				enrolled = append(enrolled, fc.id)
				if rec.State != "enrolled" || st.Photos[fc.id].Bytes != int64(len(fc.data)) || rec.PhotoNote != "" {
					t.Errorf("%s: %s (%s), %d bytes received, note %q; want enrolled unchanged (%d bytes)",
						fc.id, rec.State, rec.Error, st.Photos[fc.id].Bytes, rec.PhotoNote, len(fc.data))
				}
				continue
			}
			if rec.State != "rejected" {
				t.Errorf("%s is %s, want rejected without --fix-photos", fc.id, rec.State)
			}
			for _, w := range fc.asIs {
				if !strings.Contains(rec.Error, w) {
					t.Errorf("%s rejected with %q, want it to say %q", fc.id, rec.Error, w)
				}
			}
		}
		if !testing.Short() {
			if rec := recs["fix-s3big"]; rec.State != "rejected" || !strings.Contains(rec.Error, "limit") {
				t.Errorf("fix-s3big without --fix-photos: %s (%q), want rejected over the limit", rec.State, rec.Error)
			}
		}
		e2eWantEnrolledOnce(t, st, enrolled)
	})
}

// TestPhotosFixDownscale: with a small --max-photo-bytes a noisy photo
// cannot fit by re-encoding alone and is downscaled, never below 640 px on
// its longer side.
func TestPhotosFixDownscale(t *testing.T) {
	if testing.Short() {
		t.Skip("large image generation")
	}
	t.Parallel()
	_, _, mid := photosBigPhotos(t)
	const limit = 280_000 // 400 kB for 1200x900, scaled to 1000x750
	sb := e2eStartSandbox(t)
	c := photosCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "mid.jpg"), mid)
	before := e2eSHA256(t, filepath.Join(c.Dir, "mid.jpg"))
	photosWriteManifest(t, filepath.Join(c.Dir, "m.csv"), []photosRow{{id: "down-1", photo: "mid.jpg"}})
	r := c.Run("run", "--manifest", filepath.Join(c.Dir, "m.csv"), "--fix-photos", "--max-photo-bytes", fmt.Sprint(limit), "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, []string{"down-1"})
	photosWantJPEGInLedger(t, st, "down-1", 0, 0, limit)
	if p := st.Photos["down-1"]; p.Width*3-p.Height*4 < -8 || p.Width*3-p.Height*4 > 8 {
		t.Errorf("down-1 is %dx%d: the 4:3 aspect ratio was not kept", p.Width, p.Height)
	}
	note := e2eReportByUser(t, c)["down-1"].PhotoNote
	t.Logf("photo_note %q", note)
	if !strings.Contains(note, "resized 1000x750 -> ") || !strings.Contains(note, "re-encoded JPEG q") {
		t.Errorf("photo_note %q, want a resize from 1000x750 and a re-encoding", note)
	}
	if e2eSHA256(t, filepath.Join(c.Dir, "mid.jpg")) != before {
		t.Error("the original photo was changed")
	}
}

// TestPhotosFixSmallBomb: a PNG whose header claims 100000x100000 pixels
// but whose file is small (as a real decompression bomb is: its IDAT is
// deflated zeros) needs no conversion, so --fix-photos sends it as it is,
// never decoding it, as a plain run does (the pixel limit bounds only the
// photos bulkenroll decodes); the same header on a photo that must be
// converted (over the size limit) is rejected before anything is decoded.
func TestPhotosFixSmallBomb(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := photosCLI(t, sb.URL)
	bomb := photosWholePNG(photosBombPNG(100_000, 100_000), make([]byte, 64))
	e2eWriteFile(t, filepath.Join(c.Dir, "bomb.png"), bomb)
	e2eWriteFile(t, filepath.Join(c.Dir, "big-bomb.png"), photosWholePNG(photosBombPNG(100_000, 100_000), make([]byte, 2000)))
	photosWriteManifest(t, filepath.Join(c.Dir, "m.csv"), []photosRow{{id: "bomb-1", photo: "bomb.png"}, {id: "bomb-2", photo: "big-bomb.png"}})
	r := c.Run("run", "--manifest", filepath.Join(c.Dir, "m.csv"), "--fix-photos", "--max-photo-bytes", fmt.Sprint(len(bomb)+1000), "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Enrolled: 1, Rejected: 1})
	st := sb.State(t)
	if p := st.Photos["bomb-1"]; p.Bytes != int64(len(bomb)) {
		t.Errorf("bomb-1: the sandbox got %+v, want the %d-byte file as it is", p, len(bomb))
	}
	if rec := e2eReportByUser(t, c)["bomb-2"]; !strings.Contains(rec.Error, "megapixel") {
		t.Errorf("bomb-2: %s (%q), want rejected over the megapixel limit", rec.State, rec.Error)
	}
}
