package photofix

import (
	"encoding/binary"
	"testing"
)

// BenchmarkFix measures Fix on a 12-megapixel phone-sized photo (4032x3024):
// rotated by EXIF only, and over a 2 MiB limit so it must be downscaled.
// Run: go test -run '^$' -bench Fix -benchmem ./importer/photofix/
func BenchmarkFix(b *testing.B) {
	img := noisy(4032, 3024, 7)
	jpg := encJPEG(b, img, 92)
	rotated := withSegment(jpg, exifSegment(binary.LittleEndian, 6))
	b.Logf("source JPEG: %s", humanBytes(int64(len(jpg))))
	for _, bc := range []struct {
		name string
		src  []byte
		opts Options
	}{
		{"rotate", rotated, Options{MaxBytes: 64 << 20}},
		{"downscale", jpg, Options{MaxBytes: 2 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.src)))
			for b.Loop() {
				r, err := Fix(bc.src, bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if b.N == 1 {
					b.Log(r.Note)
				}
			}
		})
	}
}
