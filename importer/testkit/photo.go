// Package testkit holds what the tests of every package share: photo
// generators, test credentials, and helpers to start the sandbox and run the
// built binary. Only tests import it; it must not be imported by the tool's
// own code.
package testkit

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// Credentials shared by the tests. The key is distinctive so that a leak of
// it into any message, log or file can be searched for.
const (
	Partner = "partner-77"
	APIKey  = "KEY-zq8Xv-LEAKCANARY-31337"
)

// PhotoSide is the width and height of the images Photo returns.
const PhotoSide = 8

// Image returns a PhotoSide×PhotoSide image whose pixels depend on seed.
func Image(seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, PhotoSide, PhotoSide))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + i*7)
	}
	img.Set(0, 0, color.RGBA{R: byte(seed), G: byte(seed >> 8), B: 1, A: 255})
	return img
}

// Photo returns Image(seed) encoded as a valid JPEG ("jpeg") or PNG ("png"),
// so that photos of different users differ.
func Photo(t testing.TB, format string, seed int) []byte {
	t.Helper()
	if format == "png" {
		return EncodePNG(t, Image(seed))
	}
	return EncodeJPEG(t, Image(seed), 90)
}

// NoisePhoto returns a w×h image of noise encoded as format ("jpeg", at
// quality 85, or "png"): large for its size, as camera photos are. The same
// size gives the same bytes.
func NoisePhoto(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	if format == "png" {
		return EncodePNG(t, img)
	}
	return EncodeJPEG(t, img, 85)
}
