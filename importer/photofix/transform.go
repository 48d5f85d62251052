package photofix

import (
	"image"
	"image/color"
	"image/jpeg"
	"math"

	"golang.org/x/image/draw"
)

// upright returns img turned according to EXIF orientation o (1-8), as an
// image the JPEG encoder reads quickly (*image.YCbCr, *image.Gray or an opaque
// *image.RGBA). Transparent pixels are laid on white, not black, since JPEG
// has no alpha. An image that is already upright and in such a form is
// returned as is; otherwise the result is a new *image.RGBA, built one source
// row at a time so only it and the source are in memory.
func upright(img image.Image, o int) image.Image {
	opaque := false
	if op, ok := img.(interface{ Opaque() bool }); ok {
		opaque = op.Opaque()
	}
	if o == 1 && opaque {
		switch img.(type) {
		case *image.YCbCr, *image.Gray, *image.RGBA:
			return img
		}
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	op := draw.Src
	if !opaque {
		op = draw.Over
	}
	if o == 1 {
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		if !opaque {
			draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		}
		draw.Draw(dst, dst.Bounds(), img, b.Min, op)
		return dst
	}
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	row := image.NewRGBA(image.Rect(0, 0, w, 1))
	white := image.NewUniform(color.White)
	stride := dst.Stride
	for y := 0; y < h; y++ {
		if !opaque {
			draw.Draw(row, row.Bounds(), white, image.Point{}, draw.Src)
		}
		draw.Draw(row, row.Bounds(), img, image.Pt(b.Min.X, b.Min.Y+y), op)
		// Source pixel x of this row lands at base + x*step in dst.Pix.
		var base, step int
		switch o {
		case 2:
			base, step = y*stride+(w-1)*4, -4
		case 3:
			base, step = (h-1-y)*stride+(w-1)*4, -4
		case 4:
			base, step = (h-1-y)*stride, 4
		case 5:
			base, step = y*4, stride
		case 6:
			base, step = (h-1-y)*4, stride
		case 7:
			base, step = (h-1-y)*4+(w-1)*stride, -stride
		case 8:
			base, step = y*4+(w-1)*stride, -stride
		default: // 1 is handled above; anything else is treated as upright
			base, step = y*stride, 4
		}
		src := row.Pix[:4*w]
		d := base
		for x := 0; x < 4*w; x += 4 {
			copy(dst.Pix[d:d+4], src[x:x+4])
			d += step
		}
	}
	return dst
}

// cappedBuffer keeps at most max bytes of what is written to it, and counts
// the rest, so that a JPEG encoded over the limit costs no more memory than
// one under it while its full size is still known.
type cappedBuffer struct {
	b   []byte
	n   int64
	max int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.n <= c.max {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

func (c *cappedBuffer) reset() { c.b, c.n = c.b[:0], 0 }

// hopeless is how far over the limit an encoding must be for lower
// qualities not to be worth trying: going from quality 90 to 60 rarely
// shrinks a photo's JPEG by more than half, never to a third.
const hopeless = 3

// encodeFitting encodes img as JPEG at each of the qualities in turn and
// returns the first encoding of at most limit bytes with its quality. When none
// fits, data is nil, q is the last quality tried and last the size it gave;
// lower qualities are skipped once an encoding is hopeless times the limit.
func encodeFitting(img image.Image, limit int64) (data []byte, q int, last int64, err error) {
	buf := &cappedBuffer{max: limit}
	for _, q = range qualities {
		buf.reset()
		if err := jpeg.Encode(buf, img, &jpeg.Options{Quality: q}); err != nil {
			return nil, q, 0, err
		}
		if buf.n <= limit {
			return buf.b, q, buf.n, nil
		}
		if buf.n > hopeless*limit {
			break
		}
	}
	return nil, q, buf.n, nil
}

// downscaleFitting shrinks img (already tried at full size, where the last
// quality tried, q, gave last bytes) until some quality fits in
// opts.MaxBytes, never letting the longer side go below opts.MinSide. Each
// try scales from img itself with Catmull-Rom, and aims, from the size of the
// previous try and the rule that a JPEG's size follows its pixel count, at a
// size where that quality fits with a 10% margin. When nothing fits, data is
// nil, w, h the last size tried, q and last the quality and size it gave.
func downscaleFitting(img image.Image, q int, last int64, opts Options) (data []byte, _ int, _ int64, w, h int, err error) {
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	long := max(W, H)
	if long <= opts.MinSide {
		return nil, q, last, W, H, nil
	}
	cur := long
	for {
		f := math.Sqrt(float64(opts.MaxBytes)/float64(last)) * 0.9
		f = min(f, 0.9) // always make progress
		next := max(int(float64(cur)*f), opts.MinSide)
		w = max(1, int(math.Round(float64(W)*float64(next)/float64(long))))
		h = max(1, int(math.Round(float64(H)*float64(next)/float64(long))))
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
		data, q, last, err = encodeFitting(dst, opts.MaxBytes)
		if err != nil || data != nil || next == opts.MinSide {
			return data, q, last, w, h, err
		}
		cur = next
	}
}
