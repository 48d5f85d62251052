package importer

// SmartSelfie Compare rows: their images prepared for the request, the
// job_id that makes a row's enrollment happen once, and the hash of the
// images Smile ID refused.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"bulkenroll/importer/photosource"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Comparer sends one SmartSelfie Compare job; *smileid.Client is the real one.
type Comparer interface {
	Compare(ctx context.Context, req smileid.CompareRequest) (*smileid.CompareResult, error)
}

// CompareOptions are the settings of a compare run.
type CompareOptions struct {
	// Comparer sends the jobs; set, it makes the run a compare run.
	Comparer Comparer
	// AllowNewEnroll sends allow_new_enroll=true (re-enroll enrolled users).
	AllowNewEnroll bool
	// CallbackURL, if set, is sent as callback_url.
	CallbackURL string
}

// sendFunc sends a row's request once and returns Smile ID's answer.
type sendFunc func(ctx context.Context) (*smileid.Result, error)

// prepare loads what the row's request needs and returns how to send it:
// the user's photo for backfill, every image and the job_id in flight for
// compare.
func (w *worker) prepare(j job, rec *store.Record) (sendFunc, error) {
	r := w.r
	if r.opts.Compare.Comparer == nil {
		u, err := w.photo(j, rec)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (*smileid.Result, error) { return r.sub.Submit(ctx, u) }, nil
	}
	req, err := w.compareRequest(j, rec)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (*smileid.Result, error) {
		res, err := r.opts.Compare.Comparer.Compare(ctx, req)
		if err != nil {
			return nil, err // a refusal (0841, 0941) keeps its code and text in err
		}
		return &smileid.Result{ResultCode: res.Code, ResultText: res.Text, SmileJobID: res.SmileJobID, JobID: req.JobID}, nil
	}, nil
}

// compareRequest prepares a compare row's images, each as a photo is (see
// photo: checked whole, streamed from its file or fetched by the request,
// converted under FixPhotos), with the row's job_id in flight. A fault of
// an image is a *manifest.RowError naming its field.
func (w *worker) compareRequest(j job, rec *store.Record) (smileid.CompareRequest, error) {
	r := w.r
	f := j.row.Compare
	req := smileid.CompareRequest{UserID: j.row.UserID, JobID: rec.InFlightJobID, ComparisonType: f.ComparisonType,
		AllowNewEnroll: r.opts.Compare.AllowNewEnroll, CallbackURL: r.opts.Compare.CallbackURL}
	if req.JobID == "" {
		return req, errors.New("internal: a compare row without a job_id in flight")
	}
	var notes []string
	for i, img := range j.row.Images() {
		one := j
		one.row.PhotoPath = img.Path
		before := rec.PhotoNote
		rec.PhotoNote = ""
		u, err := w.photo(one, rec)
		if err != nil {
			var re *manifest.RowError
			if errors.As(err, &re) {
				return req, &manifest.RowError{Field: img.Field, Reason: re.Reason}
			}
			return req, fmt.Errorf("%s: %w", img.Field, err)
		}
		if rec.PhotoNote != "" {
			notes = append(notes, img.Field+": "+rec.PhotoNote)
		}
		rec.PhotoNote = before
		im := smileid.Image{Name: imageName(img.Shown), Data: u.Photo, Open: u.Open, Size: u.Size}
		switch {
		case i == 0:
			req.Selfie = im
		case i == 1:
			req.Comparison = im
		default:
			req.Liveness = append(req.Liveness, im)
		}
	}
	if len(notes) > 0 {
		rec.PhotoNote = joinNotes(notes)
	}
	return req, nil
}

// imageName is the file name a part carries: the base name of the image's
// path or URL (no query), or "image.jpg".
func imageName(shown string) string {
	if photosource.IsRemote(shown) {
		shown = photosource.Redact(shown)
		if i := indexAny(shown, "?#"); i >= 0 {
			shown = shown[:i]
		}
	}
	name := filepath.Base(shown)
	if name == "." || name == "/" || name == "" {
		return "image.jpg"
	}
	return name
}

func indexAny(s, chars string) int {
	for i := 0; i < len(s); i++ {
		for k := 0; k < len(chars); k++ {
			if s[i] == chars[k] {
				return i
			}
		}
	}
	return -1
}

func joinNotes(notes []string) string {
	out := notes[0]
	for _, n := range notes[1:] {
		out += "; " + n
	}
	return out
}

// rowSum hashes the row's images (a backfill row's photo, every image of a
// compare row, in order), or returns "" if one cannot be read: what a
// refusal records, so that a later run sends the row again only if its
// images changed.
func rowSum(row *manifest.Row) string {
	if row.Compare == nil {
		return photoSum(row.PhotoPath)
	}
	h := sha256.New()
	for _, img := range row.Images() {
		f, err := os.Open(img.Path)
		if err != nil {
			return ""
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return ""
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// markCompare marks a compare row about to be sent with the job_id of its
// generation (see store.Store.JobID): a row whose earlier request's
// outcome is unknown carries the same job_id again, so Smile ID cannot
// enroll it twice (it answers 2215 to the second).
func (r *runner) markCompare(rec *store.Record, row manifest.Row) error {
	jobID := "dry-run"
	if r.st != nil && !r.opts.DryRun {
		var err error
		if jobID, err = r.st.JobID(row.UserID, rec.Generation); err != nil {
			return err
		}
	}
	rec.MarkJob(r.runID, row.Line, row.Photo, jobID, r.opts.Now())
	return nil
}

// jobExistsReason explains a 2215 for the job_id a row carries: an
// earlier request with it reached Smile ID, and its answer was lost.
func jobExistsReason(jobID string, err error) string {
	return fmt.Sprintf("%v: an earlier request of this row, job_id %s, reached Smile ID but its answer was lost; "+
		"its result cannot be fetched, so the row is not sent again under a new job_id: "+
		"check job_id %s in the Smile ID portal", err, jobID, jobID)
}
