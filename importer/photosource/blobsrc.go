package photosource

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// bucket returns the bucket of r, opening it on first use. Buckets are cached
// by scheme, bucket name and canonical query.
func (o *Opener) bucket(ctx context.Context, r *ref) (*blob.Bucket, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, newErr(r.shown, nil, "opener closed", nil)
	}
	if b := o.buckets[r.cache]; b != nil {
		return b, nil
	}
	b, err := blob.OpenBucket(ctx, r.u.String())
	if err != nil {
		// The drivers' messages may repeat the bucket URL with its query.
		e := newErr(r.shown, nil, "cannot open "+r.u.Scheme+" bucket", scrub(err, r))
		e.Transient = IsTransient(err) && ctx.Err() == nil
		return nil, e
	}
	o.buckets[r.cache] = b
	return b, nil
}

// scrub returns err, with the values of the query of r's bucket URL (an
// endpoint, a profile, anything a user may not want in logs) replaced by
// "..." in its message.
func scrub(err error, r *ref) error {
	if r.u.RawQuery == "" {
		return err
	}
	msg := err.Error()
	out := msg
	for _, vs := range r.u.Query() {
		for _, v := range vs {
			if len(v) >= 3 {
				out = strings.ReplaceAll(out, v, "...")
			}
		}
	}
	if out == msg {
		return err
	}
	return &scrubbed{msg: out, err: err}
}

// scrubbed is an error with a redacted message that still unwraps to the
// original, for errors.Is and errors.As.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// statBlob reads the attributes and the first bytes of an object.
func (o *Opener) statBlob(ctx context.Context, r *ref) (Info, error) {
	b, err := o.bucket(ctx, r)
	if err != nil {
		return Info{}, err
	}
	attrs, err := b.Attributes(ctx, r.key)
	if err != nil {
		return Info{}, blobErr(r, err)
	}
	info := Info{Size: attrs.Size, ModTime: attrs.ModTime}
	if attrs.Size > o.max {
		return info, tooLarge(r.shown, attrs.Size, o.max)
	}
	if attrs.Size == 0 {
		return info, nil
	}
	rd, err := b.NewRangeReader(ctx, r.key, 0, min(int64(HeadLen), attrs.Size), nil)
	if err != nil {
		return Info{}, blobErr(r, err)
	}
	defer rd.Close()
	head := make([]byte, min(int64(HeadLen), attrs.Size))
	n, err := io.ReadFull(rd, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Info{}, blobErr(r, err)
	}
	info.Head = head[:n]
	return info, nil
}

// openBlob opens an object with a ranged read of MaxBytes+1 bytes, so that
// no more than that is ever sent, and refuses it at once if its announced
// size is over the limit.
func (o *Opener) openBlob(ctx context.Context, r *ref) (*Photo, error) {
	b, err := o.bucket(ctx, r)
	if err != nil {
		return nil, err
	}
	rd, err := b.NewRangeReader(ctx, r.key, 0, o.max+1, nil)
	if err != nil {
		if rangeNotSatisfiable(err) {
			// S3 answers 416 to a range over an empty object.
			attrs, aerr := b.Attributes(ctx, r.key)
			if aerr == nil && attrs.Size == 0 {
				return newPhoto(io.NopCloser(eofReader{}), 0, r, o.max), nil
			}
		}
		return nil, blobErr(r, err)
	}
	size := rd.Size()
	if size > o.max {
		rd.Close()
		return nil, tooLarge(r.shown, size, o.max)
	}
	if size < 0 {
		size = o.max // not announced: Read stops past the limit
	}
	return newPhoto(rd, size, r, o.max), nil
}

// eofReader is an empty reader.
type eofReader struct{}

// Read implements io.Reader.
func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// rangeNotSatisfiable reports an HTTP 416 answer or an InvalidRange code.
func rangeNotSatisfiable(err error) bool {
	var sc statusCoder
	if errors.As(err, &sc) && sc.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
		return true
	}
	var ec interface{ ErrorCode() string }
	return errors.As(err, &ec) && ec.ErrorCode() == "InvalidRange"
}

// blobErr classifies a gocloud blob error.
func blobErr(r *ref, err error) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return newErr(r.shown, ErrNotFound, "no such object", nil)
	case gcerrors.PermissionDenied:
		return newErr(r.shown, nil, "access denied", nil)
	}
	if errors.Is(err, context.Canceled) {
		return newErr(r.shown, nil, "interrupted", context.Canceled)
	}
	e := newErr(r.shown, nil, "storage error", scrub(err, r))
	e.Transient = IsTransient(err)
	return e
}
