package sandbox

// Photo checks: JPEG or PNG by content, within the size limit.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"sync"
)

// checkPhoto returns why photo is unacceptable, or "" if it is a JPEG or PNG
// file in standard base64 within the size limit; for an acceptable photo it
// also describes it for the ledger.
func (s *Server) checkPhoto(photo []byte) (string, PhotoInfo) {
	if len(photo) >= 5 && bytes.EqualFold(photo[:5], []byte("data:")) {
		return "photo must be base64 without a data URI prefix", PhotoInfo{}
	}
	bp := photoPool.Get().(*[]byte)
	defer photoPool.Put(bp)
	need := base64.StdEncoding.DecodedLen(len(photo))
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	dst := (*bp)[:need]
	n, err := base64.StdEncoding.Decode(dst, photo)
	if err != nil {
		return textNotBase64, PhotoInfo{}
	}
	return s.describePhoto(dst[:n])
}

// describePhoto returns why the decoded photo file data is unacceptable
// (over the size limit, not a JPEG or PNG), or "" and what is known of it.
func (s *Server) describePhoto(data []byte) (string, PhotoInfo) {
	if int64(len(data)) > s.maxPhoto {
		return s.tooLarge(), PhotoInfo{}
	}
	info := PhotoInfo{Bytes: int64(len(data))}
	switch {
	case bytes.HasPrefix(data, jpegMagic):
		info.Format = "jpeg"
	case bytes.HasPrefix(data, pngMagic):
		info.Format = "png"
	default:
		return "photo must be a JPEG or PNG image", PhotoInfo{}
	}
	// The header only: cheap whatever the photo's size.
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil {
		info.ConfigError = err.Error()
	} else {
		info.Width, info.Height = cfg.Width, cfg.Height
	}
	return "", info
}

const textNotBase64 = "photo is not valid standard base64"

func (s *Server) tooLarge() string {
	return fmt.Sprintf("photo is larger than the limit of %d bytes", s.maxPhoto)
}

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A}
)

// photoPool holds the buffers photos are decoded into.
var photoPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
