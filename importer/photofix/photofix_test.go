package photofix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	_ "image/jpeg" // image.DecodeConfig below must know JPEG
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// checkJPEG checks a result is a JPEG by content, within the limit, and that
// Result's size matches the JPEG.
func checkJPEG(t *testing.T, r Result, maxBytes int64) {
	t.Helper()
	cfg, name, err := image.DecodeConfig(bytes.NewReader(r.Data))
	if err != nil || name != "jpeg" {
		t.Fatalf("result: DecodeConfig says %q, %v; want a jpeg", name, err)
	}
	if int64(len(r.Data)) > maxBytes {
		t.Errorf("result is %d bytes, over the %d limit", len(r.Data), maxBytes)
	}
	if cfg.Width != r.Width || cfg.Height != r.Height {
		t.Errorf("Result says %dx%d, JPEG is %dx%d", r.Width, r.Height, cfg.Width, cfg.Height)
	}
	if !r.Changed || r.Note == "" {
		t.Errorf("Changed %v, Note %q: want a change with a note", r.Changed, r.Note)
	}
}

func TestFixConvertsEachKind(t *testing.T) {
	t.Parallel()
	pat := pattern(120, 80)
	// A grainy copy: PNG compresses grain worse than JPEG does.
	grainy := image.NewRGBA(pat.Bounds())
	for i, v := range noisy(120, 80, 5).Pix {
		grainy.Pix[i] = uint8((int(pat.Pix[i])*7 + int(v)) / 8)
	}
	webpLossless, err := os.ReadFile("testdata/pattern-lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpLossy, err := os.ReadFile("testdata/pattern-lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	pngBytes := encPNG(t, grainy)
	bigJPEG := encJPEG(t, pat, 100)
	// A PNG with transparent corners: they must come out white, not black.
	alpha := image.NewNRGBA(pat.Bounds())
	for y := 0; y < 80; y++ {
		for x := 0; x < 120; x++ {
			c := grainy.RGBAAt(x, y)
			alpha.SetNRGBA(x, y, color.NRGBA{c.R, c.G, c.B, 255})
		}
	}
	for y := 40; y < 48; y++ {
		for x := 56; x < 64; x++ {
			alpha.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 0})
		}
	}
	alphaPNG := encPNG(t, alpha)

	for _, tc := range []struct {
		name   string
		src    []byte
		max    int64
		w, h   int
		note   string
		format string
	}{
		{"GIF", encGIF(t, pat), 0, 120, 80, "converted GIF -> JPEG, re-encoded JPEG q90, ", "GIF"},
		{"BMP", encBMP(t, pat), 0, 120, 80, "converted BMP -> JPEG, re-encoded JPEG q90, ", "BMP"},
		{"TIFF", encTIFF(t, pat), 0, 120, 80, "converted TIFF -> JPEG, re-encoded JPEG q90, ", "TIFF"},
		{"WebP lossless", webpLossless, 0, 48, 32, "converted WebP -> JPEG, re-encoded JPEG q90, 138 B -> ", "WebP"},
		{"WebP lossy", webpLossy, 0, 48, 32, "converted WebP -> JPEG, re-encoded JPEG q90, ", "WebP"},
		{"PNG over the limit", pngBytes, int64(len(pngBytes)) - 1, 120, 80, "converted PNG -> JPEG, re-encoded JPEG q", "PNG"},
		{"JPEG over the limit", bigJPEG, int64(len(bigJPEG)) - 1, 120, 80, "re-encoded JPEG q90, ", "JPEG"},
		{"PNG with alpha", alphaPNG, int64(len(alphaPNG)) - 1, 120, 80, "converted PNG -> JPEG", "PNG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.max
			if limit == 0 {
				limit = DefaultMaxBytes
			}
			r, err := Fix(tc.src, Options{MaxBytes: tc.max})
			if err != nil {
				t.Fatalf("Fix: %v", err)
			}
			checkJPEG(t, r, limit)
			checkMarkers(t, r.Data, tc.w, tc.h)
			if !strings.HasPrefix(r.Note, tc.note) {
				t.Errorf("note %q, want it to start %q", r.Note, tc.note)
			}
			if r.Format != tc.format {
				t.Errorf("Format %q, want %q", r.Format, tc.format)
			}
		})
	}

	t.Run("transparent pixel on white", func(t *testing.T) {
		r, err := Fix(alphaPNG, Options{MaxBytes: int64(len(alphaPNG)) - 1})
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		if r, g, b, _ := img.At(60, 44).RGBA(); r>>8 < 200 || g>>8 < 200 || b>>8 < 200 {
			t.Errorf("transparent pixel became %d,%d,%d, want white", r>>8, g>>8, b>>8)
		}
	})
}

func TestFixOrientation(t *testing.T) {
	t.Parallel()
	disp := pattern(96, 64) // landscape, so a missed quarter turn shows in the size
	for o := 1; o <= 8; o++ {
		stored := encJPEG(t, storedFor(disp, o), 95)
		for _, bo := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
			src := withSegment(stored, exifSegment(bo, uint16(o)))
			if got := Orientation(src); got != o {
				t.Fatalf("%v orientation %d: Orientation says %d", bo, o, got)
			}
			r, err := Fix(src, Options{})
			if err != nil {
				t.Fatalf("%v orientation %d: %v", bo, o, err)
			}
			if o == 1 {
				if r.Changed || !bytes.Equal(r.Data, src) {
					t.Errorf("orientation 1 was changed: %q", r.Note)
				}
				continue
			}
			t.Run(bo.String()+"/"+string(rune('0'+o)), func(t *testing.T) {
				checkJPEG(t, r, DefaultMaxBytes)
				checkMarkers(t, r.Data, 96, 64)
				if !strings.Contains(r.Note, "(EXIF orientation "+string(rune('0'+o))+"), re-encoded JPEG q90") {
					t.Errorf("note %q", r.Note)
				}
				if Orientation(r.Data) != 1 {
					t.Errorf("result still carries an orientation")
				}
			})
		}
	}
}

func TestFixPassesThroughUnchanged(t *testing.T) {
	t.Parallel()
	pat := pattern(64, 48)
	jpg := encJPEG(t, pat, 80)
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"JPEG", jpg},
		{"JPEG with orientation 1", withSegment(jpg, exifSegment(binary.BigEndian, 1))},
		{"JPEG with an invalid orientation", withSegment(jpg, exifSegment(binary.LittleEndian, 9))},
		{"PNG", encPNG(t, pat)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.src)
			r, err := Fix(tc.src, Options{MaxBytes: int64(len(jpg) + 200)})
			if err != nil {
				t.Fatal(err)
			}
			if r.Changed || r.Note != "" || !bytes.Equal(r.Data, orig) || &r.Data[0] != &tc.src[0] {
				t.Errorf("changed (%v, %q), want the input itself", r.Changed, r.Note)
			}
			if r.Width != 64 || r.Height != 48 {
				t.Errorf("size %dx%d", r.Width, r.Height)
			}
		})
	}
	// At exactly the limit a photo is acceptable.
	r, err := Fix(jpg, Options{MaxBytes: int64(len(jpg))})
	if err != nil || r.Changed {
		t.Errorf("JPEG exactly at the limit: changed %v, %v", r.Changed, err)
	}
}

func TestFixOversizeDownscales(t *testing.T) {
	t.Parallel()
	const limit = 80 << 10
	src := encJPEG(t, noisy(800, 600, 1), 95)
	if len(src) <= limit {
		t.Fatalf("test photo is only %d bytes", len(src))
	}
	orig := bytes.Clone(src)
	r, err := Fix(src, Options{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	checkJPEG(t, r, limit)
	if !bytes.Equal(src, orig) {
		t.Error("Fix changed its input")
	}
	if long := max(r.Width, r.Height); long < DefaultMinSide || long >= 800 {
		t.Errorf("result %dx%d: want the longer side in [640, 800)", r.Width, r.Height)
	}
	if r.Width*3 != r.Height*4 && (r.Width*3-r.Height*4)*(r.Width*3-r.Height*4) > 16 {
		t.Errorf("aspect ratio lost: %dx%d", r.Width, r.Height)
	}
	if !strings.HasPrefix(r.Note, "resized 800x600 -> ") || !strings.Contains(r.Note, "KiB -> ") {
		t.Errorf("note %q", r.Note)
	}
	t.Logf("%s", r.Note)

	// Rotation and downscaling together: the size is the upright one.
	rotated := withSegment(encJPEG(t, noisy(600, 800, 2), 95), exifSegment(binary.LittleEndian, 6))
	r, err = Fix(rotated, Options{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	checkJPEG(t, r, limit)
	if r.Width <= r.Height {
		t.Errorf("orientation 6 of a 1200x1600 photo gave %dx%d, want landscape", r.Width, r.Height)
	}
	if !strings.HasPrefix(r.Note, "rotated (EXIF orientation 6), resized 800x600 -> ") {
		t.Errorf("note %q", r.Note)
	}
}

func TestFixCannotFit(t *testing.T) {
	t.Parallel()
	src := encJPEG(t, noisy(700, 500, 3), 90)
	_, err := Fix(src, Options{MaxBytes: 8 << 10})
	var pe *Error
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || pe.Format != "JPEG" {
		t.Fatalf("got %v, want an *Error wrapping ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "JPEG photo (700x500, ") || !strings.Contains(err.Error(), "cannot be made to fit the 8.0 KiB limit: at 640x457, the smallest size allowed, the JPEG is still ") {
		t.Errorf("message %q", err)
	}
	// A photo already at or under MinSide is not shrunk at all.
	small := encJPEG(t, noisy(300, 200, 4), 100)
	if _, err := Fix(small, Options{MaxBytes: 1 << 10}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "at 300x200, the smallest") {
		t.Errorf("small photo: %v", err)
	}
}

func TestFixRefusesBombs(t *testing.T) {
	// Not parallel: it measures allocation.
	gifBomb := []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00;")
	for _, tc := range []struct {
		name string
		src  []byte
		max  int64
	}{
		{"PNG 100000x100000 over the size limit", pngHeader(100000, 100000), 10},
		{"GIF 65535x65535", gifBomb, 0},
	} {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := Fix(tc.src, Options{MaxBytes: tc.max})
		runtime.ReadMemStats(&ms1)
		if !errors.Is(err, ErrTooManyPixels) {
			t.Errorf("%s: got %v, want ErrTooManyPixels", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "over the 50.0 megapixel limit") {
			t.Errorf("%s: message %q", tc.name, err)
		}
		if a := ms1.TotalAlloc - ms0.TotalAlloc; a > 1<<20 {
			t.Errorf("%s: allocated %d bytes to refuse it", tc.name, a)
		}
	}
	// The ceiling is configurable, and bounds only photos to decode.
	src := encPNG(t, pattern(100, 100))
	big := int64(len(src) - 1) // over the size limit: must be decoded
	if _, err := Fix(src, Options{MaxPixels: 9999, MaxBytes: big}); !errors.Is(err, ErrTooManyPixels) {
		t.Errorf("MaxPixels 9999 with 100x100: %v", err)
	}
	if _, err := Fix(src, Options{MaxPixels: 10000, MaxBytes: big}); err != nil && errors.Is(err, ErrTooManyPixels) {
		t.Errorf("MaxPixels 10000 with 100x100: %v", err)
	}
	// A photo sent as it is is not decoded: its pixels are not limited (a
	// plain run sends it too).
	if res, err := Fix(pngHeader(100000, 100000), Options{}); err != nil || res.Changed {
		t.Errorf("PNG 100000x100000 within the size limit: %v, changed %v", err, res.Changed)
	}
	if res, err := Fix(src, Options{MaxPixels: 9999}); err != nil || res.Changed {
		t.Errorf("MaxPixels 9999 with an upright 100x100 PNG within the limit: %v, changed %v", err, res.Changed)
	}
}

func TestFixRefusesUnsupported(t *testing.T) {
	t.Parallel()
	heic := []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x00")
	avif := []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf")
	for _, tc := range []struct {
		name, format, msg string
		src               []byte
		kind              error
	}{
		{"HEIC", "HEIC", "HEIC photos cannot be converted; export them as JPEG", heic, ErrUnsupported},
		{"AVIF", "AVIF", "AVIF photos cannot be converted; export them as JPEG", avif, ErrUnsupported},
		{"PDF", "PDF", "a PDF is not a photo", []byte("%PDF-1.7\n"), ErrUnsupported},
		{"text", "unknown", "not a photo format that can be converted (first bytes 75 73 65 72", []byte("user_id,photo\n"), ErrUnsupported},
		{"empty", "unknown", "not a photo format", nil, ErrUnsupported},
		{"truncated JPEG", "JPEG", "cannot read the JPEG header", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00}, ErrCorrupt},
		{"truncated WebP", "WebP", "cannot read the WebP header", []byte("RIFF\x10\x00\x00\x00WEBPVP8L"), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fix(tc.src, Options{})
			var pe *Error
			if !errors.Is(err, tc.kind) || !errors.As(err, &pe) {
				t.Fatalf("got %v, want an *Error wrapping %v", err, tc.kind)
			}
			if pe.Format != tc.format || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Format %q, message %q; want %q, %q", pe.Format, err, tc.format, tc.msg)
			}
		})
	}
	// A body cut off after a good header fails on decoding, with the cause.
	full := encPNG(t, pattern(64, 64))
	_, err := Fix(full[:len(full)/2], Options{MaxBytes: 10})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cannot decode the PNG photo: ") {
		t.Errorf("truncated PNG: %v", err)
	}
}

func TestFixConcurrent(t *testing.T) {
	t.Parallel()
	src := encGIF(t, pattern(80, 60))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if _, err := Fix(src, Options{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNeeds(t *testing.T) {
	t.Parallel()
	jpg := encJPEG(t, pattern(64, 48), 80)
	rot := withSegment(jpg, exifSegment(binary.BigEndian, 6))
	upright := withSegment(jpg, exifSegment(binary.LittleEndian, 1))
	// An APP0 big enough that the Exif segment after it falls outside a short head.
	app0 := append([]byte{0xFF, 0xE0, 0x10, 0x02}, make([]byte, 0x1000)...)
	late := withSegment(withSegment(jpg, exifSegment(binary.BigEndian, 1)), app0)
	for _, tc := range []struct {
		name string
		head []byte
		size int64
		max  int64
		want bool
	}{
		{"small JPEG", jpg, int64(len(jpg)), 0, false},
		{"JPEG over the default limit", jpg[:64], 6 << 20, 0, true},
		{"JPEG over a given limit", jpg, int64(len(jpg)), 100, true},
		{"JPEG exactly at the limit", jpg, 100, 100, false},
		{"rotated JPEG", rot, int64(len(rot)), 0, true},
		{"upright JPEG", upright, int64(len(upright)), 0, false},
		{"upright JPEG, only its first 16 bytes", upright[:16], int64(len(upright)), 0, true},
		{"upright JPEG of 4 MiB, head up to its image data", upright[:bytes.Index(upright, []byte{0xFF, 0xDA})+2], 4 << 20, 0, false},
		{"rotated JPEG of 4 MiB, head up to its image data", rot[:bytes.Index(rot, []byte{0xFF, 0xDA})+2], 4 << 20, 0, true},
		{"JPEG without Exif, head up to its image data", jpg[:bytes.Index(jpg, []byte{0xFF, 0xDA})+2], 4 << 20, 0, false},
		{"JPEG whose head stops before its Exif", late[:200], int64(len(late)), 0, true},
		{"JPEG whose head holds its Exif", late[:5000], int64(len(late)), 0, false},
		{"PNG", pngHeader(10, 10), 1000, 0, false},
		{"GIF", []byte("GIF89a\x01\x00"), 100, 0, true},
		{"HEIC", []byte("\x00\x00\x00\x18ftypheic"), 100, 0, true},
		{"empty head", nil, 100, 0, true},
	} {
		if got := Needs(tc.head, tc.size, tc.max); got != tc.want {
			t.Errorf("%s: Needs = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCheckHeader: the header alone refuses what Fix would refuse before
// decoding, and says when the header is cut short.
func TestCheckHeader(t *testing.T) {
	small := pngHeader(800, 600)
	cases := []struct {
		name string
		src  []byte
		want error // nil: accepted
	}{
		{"small PNG", small, nil},
		{"PNG bomb", pngHeader(100000, 100000), ErrTooManyPixels},
		{"GIF bomb", []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00;"), ErrTooManyPixels},
		{"HEIC", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), ErrUnsupported},
		{"cut short", small[:20], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		err := CheckHeader(bytes.NewReader(c.src), Options{})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: CheckHeader = %v, want %v", c.name, err, c.want)
		}
	}
}
