package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"bulkenroll/importer/photofix"
	"bulkenroll/importer/photosource"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
)

// maxFrames bounds the liveness frames of one job.
const maxFrames = smileid.MaxLivenessFrames

// maxFixInput bounds the photos FixPhotos reads to convert.
const maxFixInput = 64 << 20

// photoReader reads a job's images as `run` reads photos: local files or
// object storage and https URLs, checked whole (JPEG or PNG, within the
// size limit, not truncated), sent unchanged unless fix is set.
type photoReader struct {
	opener *photosource.Opener
	max    int64
	fix    bool
}

// images reads the selfie and the liveness frames of c. A fault of an
// image is a *manifest.RowError naming the column.
func (p *photoReader) images(ctx context.Context, c candidate) (smileid.ZipImage, []smileid.ZipImage, error) {
	if c.LivenessErr != "" {
		return smileid.ZipImage{}, nil, &manifest.RowError{Field: "liveness", Reason: c.LivenessErr}
	}
	field := "selfie"
	if c.FromPhoto {
		field = manifest.ColPhoto
	}
	if c.Selfie == "" {
		return smileid.ZipImage{}, nil, &manifest.RowError{Field: field, Reason: "empty"}
	}
	data, err := p.read(ctx, c.Selfie, field)
	if err != nil {
		return smileid.ZipImage{}, nil, err
	}
	selfie := smileid.ZipImage{FileName: path.Base(c.Selfie), Data: data}
	var frames []smileid.ZipImage
	for _, f := range c.Liveness {
		d, err := p.read(ctx, f, "liveness")
		if err != nil {
			return smileid.ZipImage{}, nil, err
		}
		frames = append(frames, smileid.ZipImage{FileName: path.Base(f), Data: d})
	}
	return selfie, frames, nil
}

// read reads one image whole and checks it (converting it first with fix).
func (p *photoReader) read(ctx context.Context, ref, field string) ([]byte, error) {
	limit := p.max
	if p.fix {
		limit = max(limit, maxFixInput)
	}
	var buf bytes.Buffer
	shown := photosource.Redact(ref)
	if photosource.IsRemote(ref) {
		ph, err := p.opener.Open(ctx, ref)
		if err != nil {
			return nil, rowErr(field, fmt.Sprintf("%s: %v", shown, err), photosource.IsTransient(err), err)
		}
		defer ph.Close()
		if ph.Size() > limit {
			return nil, &manifest.RowError{Field: field, Reason: fmt.Sprintf("%s: %d bytes, over the %d-byte limit", shown, ph.Size(), limit)}
		}
		if _, err := buf.ReadFrom(io.LimitReader(ph, limit+1)); err != nil {
			return nil, rowErr(field, fmt.Sprintf("%s: %v", shown, err), photosource.IsTransient(err), err)
		}
	} else if !p.fix {
		if err := manifest.ReadPhoto(ref, limit, &buf); err != nil {
			var re *manifest.RowError
			if errors.As(err, &re) {
				return nil, &manifest.RowError{Field: field, Reason: re.Reason}
			}
			return nil, err
		}
		return buf.Bytes(), nil
	} else if err := readFile(ref, limit, &buf); err != nil {
		return nil, rowErr(field, fmt.Sprintf("%s: %v", shown, err), !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errTooLarge), err)
	}
	data := buf.Bytes()
	if p.fix {
		res, err := photofix.Fix(data, photofix.Options{MaxBytes: p.max})
		if err != nil {
			return nil, &manifest.RowError{Field: field, Reason: fmt.Sprintf("%s: %v", shown, err)}
		}
		data = res.Data
	}
	if int64(len(data)) > p.max {
		return nil, &manifest.RowError{Field: field, Reason: fmt.Sprintf("%s: %d bytes, over the %d-byte limit", shown, len(data), p.max)}
	}
	if reason := manifest.StructureReason(data); reason != "" {
		return nil, &manifest.RowError{Field: field, Reason: shown + ": " + reason}
	}
	return data, nil
}

// errTooLarge: a file over the limit of photos to convert.
var errTooLarge = errors.New("over the size limit of photos to convert")

// readFile reads the file at name into buf, refusing more than limit bytes.
func readFile(name string, limit int64, buf *bytes.Buffer) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		return errTooLarge
	}
	return nil
}

// rowErr words a failure to fetch an image: a passing failure stays a
// plain error (the job is tried again by a later verify), a fault of the
// image is a *manifest.RowError.
func rowErr(field, reason string, transient bool, err error) error {
	if transient {
		return fmt.Errorf("%s: %s: %w", field, reason, err)
	}
	return &manifest.RowError{Field: field, Reason: reason}
}
