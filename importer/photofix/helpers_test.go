package photofix

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"math/rand/v2"
	"testing"

	"bulkenroll/importer/testkit"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

var (
	red   = color.RGBA{255, 0, 0, 255}
	green = color.RGBA{0, 255, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
)

// pattern draws an upright test photo: a gradient with a red block in the top
// left corner, a green one top right and a blue one bottom left, so any
// rotation or mirror shows.
func pattern(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	s := min(w, h) / 4
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255}
			switch {
			case x < s && y < s:
				c = red
			case x >= w-s && y < s:
				c = green
			case x < s && y >= h-s:
				c = blue
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

// noisy draws a gradient with strong per-pixel noise, which JPEG compresses
// badly: a stand-in for a large, detailed camera photo.
func noisy(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		p := i / 4
		x, y := p%w, p/w
		m.Pix[i] = uint8(min(255, x*200/w+r.IntN(56)))
		m.Pix[i+1] = uint8(min(255, y*200/h+r.IntN(56)))
		m.Pix[i+2] = uint8(r.IntN(256))
		m.Pix[i+3] = 255
	}
	return m
}

// checkMarkers decodes a JPEG and checks it is w x h with the pattern's
// corner markers where an upright photo has them.
func checkMarkers(t *testing.T, data []byte, w, h int) {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("result does not decode as JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("result is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	s := min(w, h) / 4
	for _, m := range []struct {
		name string
		x, y int
		want color.RGBA
	}{
		{"top left", s / 2, s / 2, red},
		{"top right", w - 1 - s/2, s / 2, green},
		{"bottom left", s / 2, h - 1 - s/2, blue},
	} {
		r, g, b, _ := img.At(m.x, m.y).RGBA()
		got := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
		if !near(got, m.want) {
			t.Errorf("%s marker at (%d,%d) is %v, want about %v", m.name, m.x, m.y, got, m.want)
		}
	}
}

// near says two colours are alike, allowing for JPEG and palette losses.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) < 90 && d(a.G, b.G) < 90 && d(a.B, b.B) < 90
}

// encJPEG and encPNG encode a test image (testkit's encoders).
func encJPEG(t testing.TB, img image.Image, q int) []byte { return testkit.EncodeJPEG(t, img, q) }

func encPNG(t testing.TB, img image.Image) []byte { return testkit.EncodePNG(t, img) }

func encGIF(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encBMP(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encTIFF(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := tiff.Encode(&b, img, &tiff.Options{Compression: tiff.Deflate}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// byteOrder is what binary.LittleEndian and binary.BigEndian both are.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// exifSegment builds an APP1 Exif segment (marker included) whose IFD0 holds
// an ImageWidth entry and then the Orientation entry, in byte order bo.
func exifSegment(bo byteOrder, orientation uint16) []byte {
	var tiffData []byte
	if bo == byteOrder(binary.LittleEndian) {
		tiffData = []byte("II*\x00")
	} else {
		tiffData = []byte("MM\x00*")
	}
	tiffData = bo.AppendUint32(tiffData, 8)
	tiffData = bo.AppendUint16(tiffData, 2) // two entries
	// ImageWidth, LONG, 1, 640
	tiffData = bo.AppendUint16(tiffData, 0x0100)
	tiffData = bo.AppendUint16(tiffData, 4)
	tiffData = bo.AppendUint32(tiffData, 1)
	tiffData = bo.AppendUint32(tiffData, 640)
	// Orientation, SHORT, 1, value left-justified in the 4-byte field
	tiffData = bo.AppendUint16(tiffData, 0x0112)
	tiffData = bo.AppendUint16(tiffData, 3)
	tiffData = bo.AppendUint32(tiffData, 1)
	tiffData = bo.AppendUint16(tiffData, orientation)
	tiffData = bo.AppendUint16(tiffData, 0)
	tiffData = bo.AppendUint32(tiffData, 0) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiffData...)
	seg := []byte{0xFF, 0xE1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	return append(seg, payload...)
}

// withSegment inserts a segment right after a JPEG's SOI marker.
func withSegment(jpg, seg []byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// storedFor returns the pixels a camera would store for the upright image
// disp under EXIF orientation o, from the standard's own words for where the
// stored 0th row and 0th column lie in the upright view.
func storedFor(disp *image.RGBA, o int) *image.RGBA {
	W, H := disp.Bounds().Dx(), disp.Bounds().Dy()
	sw, sh := W, H
	if o >= 5 {
		sw, sh = H, W
	}
	s := image.NewRGBA(image.Rect(0, 0, sw, sh))
	for sy := 0; sy < sh; sy++ {
		for sx := 0; sx < sw; sx++ {
			var x, y int
			switch o {
			case 1: // row 0 top, column 0 left
				x, y = sx, sy
			case 2: // row 0 top, column 0 right
				x, y = W-1-sx, sy
			case 3: // row 0 bottom, column 0 right
				x, y = W-1-sx, H-1-sy
			case 4: // row 0 bottom, column 0 left
				x, y = sx, H-1-sy
			case 5: // row 0 left, column 0 top
				x, y = sy, sx
			case 6: // row 0 right, column 0 top
				x, y = W-1-sy, sx
			case 7: // row 0 right, column 0 bottom
				x, y = W-1-sy, H-1-sx
			case 8: // row 0 left, column 0 bottom
				x, y = sy, H-1-sx
			}
			s.SetRGBA(sx, sy, disp.RGBAAt(x, y))
		}
	}
	return s
}

// pngHeader is a PNG signature and IHDR chunk (valid CRC) claiming w x h,
// with no image data: a decompression bomb's header.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, 13)
	chunk := []byte("IHDR")
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 6, 0, 0, 0) // 8-bit RGBA
	b = append(b, chunk...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
	// An IDAT that would inflate to gigabytes is not needed: the header must
	// be enough to refuse it.
	return b
}
