// Package testkit holds what the tests of every package share: photo
// generators, test credentials, and helpers to start the sandbox and run the
// built binary. Only tests import it; it must not be imported by the tool's
// own code.
package testkit

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// Credentials shared by the tests. The key is distinctive so that a leak of
// it into any message, log or file can be searched for.
const (
	Partner = "partner-77"
	APIKey  = "KEY-zq8Xv-LEAKCANARY-31337"
)

// Photo returns a small, valid JPEG ("jpeg") or PNG ("png") image whose
// pixels depend on seed, so that photos of different users differ.
func Photo(t testing.TB, format string, seed int) []byte {
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
