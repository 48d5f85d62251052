package manifest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
)

// noiseImage returns a w×h image of noise (which compresses badly, so its
// JPEG's entropy-coded data holds many 0xFF bytes).
func noiseImage(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	return img
}

// encodeJPEG returns a real baseline JPEG of a w×h noise image (t may be
// nil, for package variables).
func encodeJPEG(_ testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, noiseImage(w, h, uint64(w*h)), &jpeg.Options{Quality: 85}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// encodePNG returns a real PNG of a w×h image (t may be nil).
func encodePNG(_ testing.TB, w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(0, 0, color.Gray{Y: 9})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// seg builds a JPEG segment: marker code and payload.
func seg(code byte, payload ...byte) []byte {
	out := []byte{0xFF, code, 0, 0}
	binary.BigEndian.PutUint16(out[2:], uint16(len(payload)+2))
	return append(out, payload...)
}

// progressive builds the structure of a progressive JPEG: two scans, a
// table between them, stuffed bytes and restart markers in the data.
func progressive() []byte {
	var b []byte
	b = append(b, 0xFF, 0xD8)
	b = append(b, seg(0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")...)...)
	b = append(b, seg(0xC2, 8, 0, 1, 0, 1, 1, 1, 0x11, 0)...)
	b = append(b, seg(0xC4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)...)
	b = append(b, seg(0xDA, 1, 1, 0, 0, 0, 0)...)
	b = append(b, 1, 2, 0xFF, 0x00, 3, 0xFF, 0xD0, 4, 0xFF, 0xFF, 0x00, 5)
	b = append(b, seg(0xC4, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)...)
	b = append(b, seg(0xDA, 1, 1, 0, 1, 63, 0)...)
	b = append(b, 6, 0xFF, 0x00, 7)
	return append(b, 0xFF, 0xD9)
}

// walkPieces runs a StructureCheck over data written in pieces of size n.
func walkPieces(data []byte, n int) string {
	var c StructureCheck
	for len(data) > 0 {
		k := min(n, len(data))
		c.Write(data[:k])
		data = data[k:]
	}
	return c.Reason()
}

func TestStructureWhole(t *testing.T) {
	jpg := encodeJPEG(t, 64, 48)
	pngData := encodePNG(t, 40, 30)
	tests := []struct {
		name string
		data []byte
	}{
		{"baseline JPEG", jpg},
		{"progressive JPEG", progressive()},
		{"JPEG with bytes after EOI", append(bytes.Clone(jpg), "trailing"...)},
		{"JPEG with fill bytes before a marker", append([]byte{0xFF, 0xD8, 0xFF, 0xFF}, jpg[3:]...)},
		{"PNG", pngData},
		{"PNG with bytes after IEND", append(bytes.Clone(pngData), 0, 0, 0)},
		{"neither (CheckHead's to refuse)", []byte("GIF89a....")},
	}
	for _, tt := range tests {
		for _, piece := range []int{1, 2, 3, 7, 4096, len(tt.data)} {
			if got := walkPieces(tt.data, piece); got != "" {
				t.Errorf("%s in pieces of %d: %q, want whole", tt.name, piece, got)
			}
		}
	}
}

func TestStructureBroken(t *testing.T) {
	jpg := encodeJPEG(t, 800, 600)
	pngData := encodePNG(t, 200, 150)
	sosAt := bytes.Index(jpg, []byte{0xFF, 0xDA})
	crcFlipped := bytes.Clone(pngData)
	crcFlipped[len(pngData)-20] ^= 1 // inside the last IDAT's data
	noIDAT := append(bytes.Clone(pngData[:33]), pngData[len(pngData)-12:]...)
	sofless := append([]byte{0xFF, 0xD8}, seg(0xDA, 1, 1, 0, 0, 63, 0)...)
	sofless = append(sofless, 1, 2, 0xFF, 0xD9)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"JPEG cut in half", jpg[:len(jpg)/2], "truncated JPEG: no end-of-image marker"},
		{"JPEG without its last byte", jpg[:len(jpg)-1], "truncated JPEG: no end-of-image marker"},
		{"JPEG cut in its headers", jpg[:sosAt], "truncated JPEG: it ends at byte"},
		{"JPEG of SOI only", []byte{0xFF, 0xD8}, "inside its headers"},
		{"JPEG EOI before a scan", append(bytes.Clone(jpg[:sosAt]), 0xFF, 0xD9), "before any image data"},
		{"JPEG scan before a frame", sofless, "before any frame header"},
		{"JPEG segment length 1", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 0xFF, 0xD9}, "has length 1"},
		{"progressive JPEG cut after its first scan", progressive()[:len(progressive())-20], "no end-of-image marker"},
		{"PNG cut in half", pngData[:len(pngData)/2], "truncated PNG"},
		{"PNG without IEND", pngData[:len(pngData)-12], "truncated PNG: no IEND chunk"},
		{"PNG signature only", pngData[:8], "truncated PNG: no IEND chunk"},
		{"PNG CRC mismatch", crcFlipped, "damaged PNG: CRC mismatch in chunk IDAT"},
		{"PNG without IDAT", noIDAT, "without image data"},
		{"PNG not starting with IHDR", append(bytes.Clone(pngData[:8]), pngData[33:]...), "not IHDR"},
	}
	for _, tt := range tests {
		for _, piece := range []int{1, 5, 4096, len(tt.data)} {
			got := walkPieces(tt.data, piece)
			if !strings.Contains(got, tt.want) {
				t.Errorf("%s in pieces of %d: %q, want it to contain %q", tt.name, piece, got, tt.want)
			}
		}
	}
}

// TestStructureEveryCut cuts real photos at every length: each prefix is
// refused, and a photo the walk accepts decodes.
func TestStructureEveryCut(t *testing.T) {
	for _, data := range [][]byte{encodeJPEG(t, 33, 17), encodePNG(t, 23, 11)} {
		if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		for n := 2; n < len(data); n++ {
			if StructureReason(data[:n]) == "" {
				t.Fatalf("a %d-byte photo cut at %d passes", len(data), n)
			}
		}
	}
}

// TestStructureAgreesWithDecoders flips bytes of real photos: whatever the
// walk accepts as a PNG must decode (its CRCs cover every byte), and a JPEG
// the decoder refuses for a missing end must be refused too.
func TestStructureAgreesWithDecoders(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pngData := encodePNG(t, 23, 11)
	for range 2000 {
		d := bytes.Clone(pngData)
		i := 8 + rng.IntN(len(d)-8)
		d[i] ^= byte(1 + rng.IntN(255))
		if StructureReason(d) == "" {
			if _, err := png.Decode(bytes.NewReader(d)); err != nil {
				t.Fatalf("byte %d changed: the walk passes a PNG that does not decode: %v", i, err)
			}
		}
	}
	jpg := encodeJPEG(t, 33, 17)
	for range 2000 {
		n := 2 + rng.IntN(len(jpg)-2)
		if StructureReason(jpg[:n]) == "" {
			t.Fatalf("JPEG cut at %d passes", n)
		}
	}
}

func TestStructureCRCHelper(t *testing.T) {
	// A hand-built PNG chunk sequence checks the CRC over type and data.
	chunk := func(typ string, data []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	d := append([]byte(nil), pngMagic...)
	d = append(d, chunk("IHDR", make([]byte, 13))...)
	d = append(d, chunk("IDAT", []byte{1, 2, 3})...)
	d = append(d, chunk("IEND", nil)...)
	if got := StructureReason(d); got != "" {
		t.Fatalf("hand-built PNG: %q", got)
	}
}

func BenchmarkStructureJPEG(b *testing.B) {
	data := encodeJPEG(b, 640, 480)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if r := StructureReason(data); r != "" {
			b.Fatal(r)
		}
	}
}

func BenchmarkStructurePNG(b *testing.B) {
	data := encodePNG(b, 640, 480)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if r := StructureReason(data); r != "" {
			b.Fatal(r)
		}
	}
}
