package photofix

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// format is an input format recognized by its first bytes.
type format struct {
	name   string // as shown to people: "JPEG", "WebP", "HEIC"
	decode func(io.Reader) (image.Image, error)
	config func(io.Reader) (image.Config, error)
	hint   string // for formats that cannot be converted: what to do instead
}

var (
	fmtJPEG = &format{name: "JPEG", decode: jpeg.Decode, config: jpeg.DecodeConfig}
	fmtPNG  = &format{name: "PNG", decode: png.Decode, config: png.DecodeConfig}
	fmtGIF  = &format{name: "GIF", decode: gif.Decode, config: gif.DecodeConfig}
	fmtWebP = &format{name: "WebP", decode: webp.Decode, config: webp.DecodeConfig}
	fmtBMP  = &format{name: "BMP", decode: bmp.Decode, config: bmp.DecodeConfig}
	fmtTIFF = &format{name: "TIFF", decode: tiff.Decode, config: tiff.DecodeConfig}
)

// sniff names the format of a file from its first bytes (12 are enough). It
// never returns nil: unknown and unconvertible formats have no decoder.
// The decoders are chosen here, by content, rather than through the image
// package's registry, so what is decoded does not depend on what other
// packages of the program happen to register.
func sniff(b []byte) *format {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return fmtJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return fmtPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return fmtGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return fmtWebP
	case bytes.HasPrefix(b, []byte("BM")) && len(b) >= 14:
		return fmtBMP
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return fmtTIFF
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		// ISO base media file: the major brand says which.
		switch string(b[8:12]) {
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs":
			return &format{name: "HEIC", hint: "HEIC photos cannot be converted; export them as JPEG"}
		case "mif1", "msf1":
			return &format{name: "HEIF", hint: "HEIF photos cannot be converted; export them as JPEG"}
		case "avif", "avis":
			return &format{name: "AVIF", hint: "AVIF photos cannot be converted; export them as JPEG"}
		}
		return &format{name: "unknown", hint: fmt.Sprintf("ISO media file (brand %q) is not a photo format that can be converted; export it as JPEG", b[8:12])}
	case bytes.HasPrefix(b, []byte{0xFF, 0x0A}), bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")):
		return &format{name: "JPEG XL", hint: "JPEG XL photos cannot be converted; export them as JPEG"}
	case bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cjP  \r\n\x87\n")), bytes.HasPrefix(b, []byte{0xFF, 0x4F, 0xFF, 0x51}):
		return &format{name: "JPEG 2000", hint: "JPEG 2000 photos cannot be converted; export them as JPEG"}
	case bytes.HasPrefix(b, []byte("%PDF")):
		return &format{name: "PDF", hint: "a PDF is not a photo; export the picture as JPEG"}
	}
	n := min(len(b), 8)
	return &format{name: "unknown", hint: fmt.Sprintf("not a photo format that can be converted (first bytes % x); use JPEG, PNG, WebP, GIF, BMP or TIFF", b[:n])}
}
