package testkit

import (
	"bytes"
	"encoding/csv"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes data to path, creating its folder.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteCSV writes records (the header first) as a CSV file at path.
func WriteCSV(t testing.TB, path string, records [][]string) {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(records); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, path, b.Bytes())
}

// EncodeJPEG encodes img as a JPEG of quality q.
func EncodeJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatalf("encoding a JPEG: %v", err)
	}
	return b.Bytes()
}

// EncodePNG encodes img as a PNG.
func EncodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatalf("encoding a PNG: %v", err)
	}
	return b.Bytes()
}

// ShapeJPEG makes the bytes of buf (random, say) a JPEG whole in structure
// as the importer checks it (headers, a scan, the end-of-image marker)
// without decoding it: a frame header and a scan header, the rest as
// entropy-coded data without markers, and EOI. buf must hold at least 27
// bytes. It is a cheap stand-in for a photo of any size.
func ShapeJPEG(buf []byte) {
	for i := range buf {
		if buf[i] == 0xFF {
			buf[i] = 0xFE
		}
	}
	n := copy(buf, []byte{0xFF, 0xD8})
	n += copy(buf[n:], []byte{0xFF, 0xC0, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0}) // SOF0, 16x16 grey
	copy(buf[n:], []byte{0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0})                    // SOS
	copy(buf[len(buf)-2:], []byte{0xFF, 0xD9})
}
