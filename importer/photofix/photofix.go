// Package photofix makes photos that Smile ID would refuse acceptable, for the
// opt-in --fix-photos mode: it converts WebP, GIF, BMP and TIFF to JPEG,
// re-encodes and if need be downscales photos over the size limit, and applies
// the EXIF orientation of JPEGs so that no face is sent sideways.
//
// It works on bytes in memory and never writes files. A photo that Smile ID
// accepts as it is (a JPEG or PNG under the limit, upright) is returned
// unchanged, the very same slice. Every other photo is decoded once, checked
// against a pixel ceiling first (image.DecodeConfig reads only the header), and
// encoded as a baseline JPEG without metadata. Fix keeps no state between
// calls and is safe for concurrent use. Besides its input, a call holds at
// most two images at a time (the decoded photo or its upright copy, and one
// rotated or downscaled copy) and one JPEG being encoded, whose kept bytes
// are capped at Options.MaxBytes.
package photofix

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Defaults for the zero fields of Options.
const (
	// DefaultMaxBytes is Smile ID's upload limit on a photo's file bytes.
	DefaultMaxBytes int64 = 5 << 20
	// DefaultMinSide is the longest side Smile ID's own capture SDKs send;
	// Fix never downscales a photo's longer side below it.
	DefaultMinSide = 640
	// DefaultMaxPixels is the pixel ceiling (50 megapixels): a decoded photo
	// this size takes about 200 MB as RGBA.
	DefaultMaxPixels int64 = 50_000_000
)

// qualities are the JPEG qualities tried at each size, best first.
var qualities = [...]int{90, 80, 70, 60}

// Options tune Fix. The zero value uses the defaults.
type Options struct {
	// MaxBytes is the largest acceptable file, in bytes; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MinSide is the smallest the longer side may be downscaled to, in
	// pixels; 0 means DefaultMinSide. A photo already smaller is never enlarged.
	MinSide int
	// MaxPixels refuses photos whose header claims more pixels (width times
	// height) before anything is decoded; 0 means DefaultMaxPixels.
	MaxPixels int64
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MinSide <= 0 {
		o.MinSide = DefaultMinSide
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	return o
}

// Result is a photo ready to send.
type Result struct {
	// Data is the photo: the input itself when Changed is false, else a new JPEG.
	Data []byte
	// Changed says Data is a new JPEG rather than the input.
	Changed bool
	// Note says what was done, for the run's report, e.g. "converted WebP ->
	// JPEG, re-encoded JPEG q90, 340.0 KiB -> 210.3 KiB"; empty when unchanged.
	Note string
	// Width and Height are the dimensions of Data, as stored (for a JPEG
	// passed through unchanged, before its EXIF orientation).
	Width, Height int
	// Format is the input's detected format: "JPEG", "PNG", "WebP", "GIF",
	// "BMP" or "TIFF".
	Format string
}

// Fix returns src as is when Smile ID would accept it (a JPEG or PNG of at
// most MaxBytes, whose EXIF orientation is absent or 1), or else new JPEG
// bytes: converted from WebP, GIF, BMP or TIFF, turned upright according to
// the EXIF orientation, re-encoded at quality 90, 80, 70 then 60 and, if
// still over MaxBytes, downscaled (never below MinSide on the longer side)
// until it fits. src is never modified.
//
// Every error is an *Error wrapping ErrUnsupported, ErrTooManyPixels,
// ErrCorrupt or ErrTooLarge. A photo that would pass through unchanged is
// refused when its header is unreadable, but not for its pixels: MaxPixels
// bounds only the photos that must be decoded.
func Fix(src []byte, opts Options) (Result, error) {
	opts = opts.withDefaults()
	f := sniff(src)
	if f.decode == nil {
		return Result{}, fail(ErrUnsupported, f.name, nil, "%s", f.hint)
	}
	cfg, err := f.config(bytes.NewReader(src))
	if err != nil {
		return Result{}, fail(ErrCorrupt, f.name, err, "cannot read the %s header", f.name)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Result{}, fail(ErrCorrupt, f.name, nil, "%s header gives an empty image (%dx%d)", f.name, cfg.Width, cfg.Height)
	}
	orientation := 1
	if f == fmtJPEG {
		orientation = Orientation(src)
	}
	size := int64(len(src))
	if (f == fmtJPEG || f == fmtPNG) && size <= opts.MaxBytes && orientation == 1 {
		// Sent as it is, never decoded: the pixel ceiling does not apply.
		return Result{Data: src, Width: cfg.Width, Height: cfg.Height, Format: f.name}, nil
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > opts.MaxPixels {
		return Result{}, fail(ErrTooManyPixels, f.name, nil, "%s photo is %dx%d, %.1f megapixels, over the %.1f megapixel limit",
			f.name, cfg.Width, cfg.Height, float64(px)/1e6, float64(opts.MaxPixels)/1e6)
	}

	img, err := f.decode(bytes.NewReader(src))
	if err != nil {
		return Result{}, fail(ErrCorrupt, f.name, err, "cannot decode the %s photo", f.name)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		// The header and the image disagree: trust neither.
		return Result{}, fail(ErrCorrupt, f.name, nil, "%s photo decodes to %dx%d but its header says %dx%d",
			f.name, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}

	var actions []string
	if f != fmtJPEG {
		actions = append(actions, fmt.Sprintf("converted %s -> JPEG", f.name))
	}
	if orientation != 1 {
		actions = append(actions, fmt.Sprintf("%s (EXIF orientation %d)", orientationVerb(orientation), orientation))
	}
	// The decoded photo is dropped as soon as it has
	// been turned upright (or flattened to RGBA), and every downscale starts
	// again from that upright image so quality is lost only once.
	img = upright(img, orientation)

	out, q, last, err := encodeFitting(img, opts.MaxBytes)
	if err != nil {
		return Result{}, fail(ErrCorrupt, f.name, err, "cannot encode the %s photo as JPEG", f.name)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if out == nil {
		out, q, last, w, h, err = downscaleFitting(img, q, last, opts)
		if err != nil {
			return Result{}, fail(ErrCorrupt, f.name, err, "cannot encode the %s photo as JPEG", f.name)
		}
		if out == nil {
			return Result{}, fail(ErrTooLarge, f.name, nil, "%s photo (%dx%d, %s) cannot be made to fit the %s limit: at %dx%d, the smallest size allowed, the JPEG is still %s at quality %d",
				f.name, b.Dx(), b.Dy(), humanBytes(size), humanBytes(opts.MaxBytes), w, h, humanBytes(last), q)
		}
		actions = append(actions, fmt.Sprintf("resized %dx%d -> %dx%d", b.Dx(), b.Dy(), w, h))
	}
	actions = append(actions, fmt.Sprintf("re-encoded JPEG q%d", q))
	note := strings.Join(actions, ", ") + ", " + humanBytes(size) + " -> " + humanBytes(int64(len(out)))
	return Result{Data: out, Changed: true, Note: note, Width: w, Height: h, Format: f.name}, nil
}

// Needs reports cheaply whether a photo may need fixing, from its first bytes
// (head: up to the Exif segment; the first 128 KiB are plenty) and its
// size in bytes; maxBytes 0 means DefaultMaxBytes. It is true for a file over
// maxBytes, for any format other than JPEG and PNG (including those Fix will
// refuse, so that Fix explains why), and for a JPEG whose EXIF orientation is
// not 1, or cannot be known because head ends inside the JPEG's headers.
// When it is false, Fix would return the photo unchanged (unless its header
// is corrupt), so a caller may skip Fix and send the photo as it is.
func Needs(head []byte, size int64, maxBytes int64) bool {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if size > maxBytes {
		return true
	}
	switch sniff(head) {
	case fmtPNG:
		return false
	case fmtJPEG:
		o, known := jpegOrientation(head)
		if !known && int64(len(head)) >= size {
			known = true // the head is the whole file
		}
		return !known || o != 1
	}
	return true
}

// orientationVerb says what applying an EXIF orientation does to the pixels.
func orientationVerb(o int) string {
	switch o {
	case 2, 4:
		return "mirrored"
	case 5, 7:
		return "rotated and mirrored"
	}
	return "rotated"
}

// humanBytes writes a size the way the rest of bulkenroll does: binary units.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// CheckHeader refuses, from its header alone, a photo that Fix would refuse
// before decoding: a format that cannot be converted, an unreadable header,
// or a header claiming more than MaxPixels (a decompression bomb is small on
// disk). r is read only as far as the header goes. It returns an error
// wrapping io.ErrUnexpectedEOF when r ends before the header does.
func CheckHeader(r io.Reader, opts Options) error {
	opts = opts.withDefaults()
	br := bufio.NewReaderSize(r, 4096)
	first, _ := br.Peek(16)
	f := sniff(first)
	if f.decode == nil {
		return fail(ErrUnsupported, f.name, nil, "%s", f.hint)
	}
	cfg, err := f.config(br)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the %s header: %w", f.name, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fail(ErrCorrupt, f.name, err, "cannot read the %s header", f.name)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > opts.MaxPixels {
		return fail(ErrTooManyPixels, f.name, nil, "%s photo is %dx%d, %.1f megapixels, over the %.1f megapixel limit",
			f.name, cfg.Width, cfg.Height, float64(px)/1e6, float64(opts.MaxPixels)/1e6)
	}
	return nil
}
