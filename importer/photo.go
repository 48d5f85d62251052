package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"bulkenroll/importer/photofix"
	"bulkenroll/importer/photosource"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// photo checks the row's photo, whole (see manifest.StructureCheck), and
// returns the user to send: with the photo streamed from its file as the
// request goes out (so a worker never holds a whole photo, its base64 and
// its body), or, with FixPhotos, converted in memory when Smile ID would
// refuse it as it is (rec's PhotoNote then says how). A remote photo is
// opened by the request, once the gate has let it go. A fault of the photo
// itself is a *manifest.RowError; a failure to read it is a plain error.
func (w *worker) photo(j job, rec *store.Record) (smileid.User, error) {
	r := w.r
	path := j.row.PhotoPath
	u := smileid.User{UserID: j.row.UserID, CreatedAt: j.row.CreatedAt}
	if photosource.IsRemote(path) {
		return w.remotePhoto(j, rec, u)
	}
	if !r.opts.FixPhotos {
		// (A compare row's images are always streamed: it has up to ten.)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() <= smallPhoto && j.row.Compare == nil {
			// A small photo is read once, whole (and checked as it is
			// read): fewer system calls than a check and a stream, and a
			// pool holds little of them.
			if err := manifest.ReadPhoto(path, r.opts.MaxPhotoBytes, &w.buf); err != nil {
				return u, err
			}
			u.Photo = w.buf.Bytes()
			return u, nil
		}
		// A larger one is read through once to check it (it is then in
		// the page cache), and streamed by the request.
		size, _, err := manifest.PeekPhoto(path, r.opts.MaxPhotoBytes)
		if err != nil {
			return u, err
		}
		u.Size, u.Open = size, func() (io.ReadCloser, error) { return os.Open(path) }
		return u, nil
	}
	// One read checks a JPEG's or PNG's structure and keeps its first
	// bytes, up to its EXIF orientation: a photo that needs nothing is
	// streamed as it is, never decoded (so no pixel limit applies to it).
	size, n, err := manifest.ScanFile(path, maxFixInput, w.fixHead())
	if err != nil {
		return u, err
	}
	head := w.head[:n]
	if !photofix.Needs(head, size, r.opts.MaxPhotoBytes) {
		if rerr := manifest.CheckHead(head); rerr != nil {
			return u, rerr
		}
		u.Size, u.Open = size, func() (io.ReadCloser, error) { return os.Open(path) }
		return u, nil
	}
	return w.convert(u, rec, "", func(buf *bytes.Buffer) error { return readAll(path, maxFixInput, buf) })
}

// fixHead returns the worker's buffer for the first bytes of a photo.
func (w *worker) fixHead() []byte {
	if w.head == nil {
		w.head = make([]byte, fixHeadLen)
	}
	return w.head
}

// fixHeadLen is how many first bytes of a photo FixPhotos looks at to tell
// whether it needs anything: enough for the JPEG headers up to the EXIF
// segment (at most 64 KiB) and the frame header. A photo whose EXIF
// orientation lies beyond them is converted.
const fixHeadLen = 128 << 10

// convert reads a photo that needs fixing with read into the buffer of a
// conversion slot (one per CPU, so at most that many photos are held for
// conversion, whatever the number of workers) and converts it, returning
// the user with the converted photo and noting on rec what was done. A
// photo Fix leaves unchanged is sent only if it is whole. name, when set,
// starts the reason of a refusal (a remote photo's URL).
func (w *worker) convert(u smileid.User, rec *store.Record, name string, read func(*bytes.Buffer) error) (smileid.User, error) {
	r := w.r
	buf := <-r.fixSlots
	defer func() {
		buf.Reset()
		r.fixSlots <- buf
	}()
	buf.Reset()
	if err := read(buf); err != nil {
		return u, err
	}
	res, err := photofix.Fix(buf.Bytes(), photofix.Options{MaxBytes: r.opts.MaxPhotoBytes})
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case !res.Changed:
		reason = manifest.StructureReason(res.Data)
	}
	if reason != "" {
		if name != "" {
			reason = name + ": " + reason
		}
		return u, &manifest.RowError{Field: manifest.ColPhoto, Reason: reason}
	}
	if res.Changed {
		rec.PhotoNote = res.Note
	}
	u.Photo = bytes.Clone(res.Data)
	return u, nil
}

// smallPhoto is the largest photo a worker reads whole rather than
// streams: 64 workers hold at most 8 MiB of them (their base64 bodies are
// pooled by the client), while larger photos, up to 5 MiB, are streamed.
const smallPhoto = 128 << 10

// maxFixInput bounds the photos FixPhotos reads to convert.
const maxFixInput = 64 << 20

// readAll reads the file at path into buf, refusing more than limit bytes.
func readAll(path string, limit int64, buf *bytes.Buffer) error {
	buf.Reset()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening photo: %w", err)
	}
	defer f.Close()
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return fmt.Errorf("reading photo: %w", err)
	}
	if n > limit {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: fmt.Sprintf("over the %d-byte limit for conversion", limit)}
	}
	return nil
}

// transientRead reports whether a photo read failed for a reason that may
// pass (an I/O error, too many open files) rather than because of the photo
// itself: ReadPhoto words the photo's own faults as a *manifest.RowError.
func transientRead(err error) bool {
	var re *manifest.RowError
	return !errors.As(err, &re)
}

// remotePhoto prepares a photo in object storage or at an https URL. The
// request opens it (once the gate lets the request go, under the requests'
// context: a wait at the gate does not count against its fetch, and a stop
// gives it the grace of requests in flight), checks its size and first
// bytes, and streams it, checking its structure as it goes: a photo that
// turns out broken ends the body short, so nothing is sent. A retry fetches
// it again. With FixPhotos, its first bytes are fetched first to tell
// whether it needs converting; one that does is fetched whole and converted
// before the gate, and a small one is kept from that first fetch.
func (w *worker) remotePhoto(j job, rec *store.Record, u smileid.User) (smileid.User, error) {
	r := w.r
	ref := j.row.PhotoPath
	if r.opts.FixPhotos {
		p, err := r.photos.Open(r.ctx, ref)
		if err != nil {
			return u, remoteErr(err)
		}
		defer p.Close()
		n, err := io.ReadFull(p, w.fixHead())
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return u, remoteErr(err)
		}
		head, size := w.head[:n], p.Size()
		if photofix.Needs(head, size, r.opts.MaxPhotoBytes) || int64(n) == size {
			return w.convert(u, rec, photosource.Redact(ref), func(buf *bytes.Buffer) error {
				buf.Write(head)
				if _, err := buf.ReadFrom(p); err != nil {
					return remoteErr(err)
				}
				return nil
			})
		}
		if rerr := checkRemoteHead(ref, size, head, r.opts.MaxPhotoBytes); rerr != nil {
			return u, rerr
		}
		// Needs nothing: sent as it is, fetched again by the request.
	}
	u.Size = -1 // the opened photo says its size
	u.Open = func() (io.ReadCloser, error) { return w.openRemote(ref) }
	return u, nil
}

// openRemote opens a remote photo for a request that the gate let go.
func (w *worker) openRemote(ref string) (io.ReadCloser, error) {
	r := w.r
	p, err := r.photos.Open(r.reqCtx, ref)
	if err != nil {
		return nil, remoteErr(err)
	}
	head := make([]byte, photosource.HeadLen)
	n, err := io.ReadFull(p, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		p.Close()
		return nil, remoteErr(err)
	}
	head = head[:n]
	if rerr := checkRemoteHead(ref, p.Size(), head, r.opts.MaxPhotoBytes); rerr != nil {
		p.Close()
		return nil, rerr
	}
	c := &checkedPhoto{r: io.MultiReader(bytes.NewReader(head), p), p: p, ref: ref}
	return c, nil
}

// checkedPhoto streams a remote photo through a structure check: at its
// end, a photo that would not decode fails the read with a
// *manifest.RowError, so the request's body ends short and is not sent.
type checkedPhoto struct {
	r     io.Reader
	p     *photosource.Photo
	ref   string
	check manifest.StructureCheck
}

// Read reads the photo, checking it.
func (c *checkedPhoto) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.check.Write(b[:n])
	if err == io.EOF {
		if reason := c.check.Reason(); reason != "" {
			return n, &manifest.RowError{Field: manifest.ColPhoto, Reason: photosource.Redact(c.ref) + ": " + reason}
		}
	} else if err != nil {
		err = remoteErr(err)
	}
	return n, err
}

// Size returns the photo's size as announced when it was opened.
func (c *checkedPhoto) Size() int64 { return c.p.Size() }

// Close ends the download.
func (c *checkedPhoto) Close() error { return c.p.Close() }

// remoteErr words a failure to fetch a remote photo: a fault of the photo
// (missing, too large, a bad URL) is a *manifest.RowError that rejects the
// row; a passing one (5xx, time-out) a plain error that fails it.
func remoteErr(err error) error {
	if photosource.IsTransient(err) {
		return err
	}
	return &manifest.RowError{Field: manifest.ColPhoto, Reason: strings.TrimPrefix(err.Error(), "photo: ")}
}

// checkRemoteHead refuses a remote photo from its size and first bytes:
// over limit, or not a JPEG or PNG. The reason names the URL, redacted.
func checkRemoteHead(ref string, size int64, head []byte, limit int64) *manifest.RowError {
	if size > limit {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: fmt.Sprintf("%s: %d bytes, over the %d-byte limit", photosource.Redact(ref), size, limit)}
	}
	if rerr := manifest.CheckHead(head); rerr != nil {
		rerr.Reason = photosource.Redact(ref) + ": " + rerr.Reason
		return rerr
	}
	return nil
}

// CheckRemotePhoto checks a photo in object storage or at an https URL
// without downloading it, as validate does: it exists (a HEAD or attributes
// call), is within limit, and its first bytes are a JPEG's or a PNG's. Any
// failure, a passing one too, is a problem of the row here.
func CheckRemotePhoto(ctx context.Context, photos *photosource.Opener, ref string, limit int64) *manifest.RowError {
	info, err := photos.Stat(ctx, ref)
	if err != nil {
		return &manifest.RowError{Field: manifest.ColPhoto, Reason: strings.TrimPrefix(err.Error(), "photo: ")}
	}
	return checkRemoteHead(ref, info.Size, info.Head, limit)
}
