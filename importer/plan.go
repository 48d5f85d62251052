package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"bulkenroll/importer/photofix"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// job is one row handed to a worker, already marked in the store.
type job struct {
	row    manifest.Row
	key    string       // the record's key: the user_id
	prior  store.Record // the record before this run touched it
	found  bool         // prior exists
	rec    store.Record // as marked: pending, attempt counted, outcome unknown
	marked bool         // rec was queued in the store (undone if never sent)
}

// plan settles a row that needs no request (refused, duplicate, already
// enrolled, refused before with the same photo) and returns false; or
// returns the job that sends it, with its mark, and true. A store read
// failure stops the run; the row then stays as it was.
func (r *runner) plan(row manifest.Row, rowErr *manifest.RowError) (job, bool) {
	now := r.opts.Now()
	if rowErr != nil {
		r.rejectRow(row, rowErr.Error())
		return job{}, false
	}
	fieldErr := r.val.CheckFields(&row)
	var fe *manifest.RowError
	if errors.As(fieldErr, &fe) && fe.Field == "user_id" {
		r.rejectRow(row, fe.Error())
		return job{}, false
	}
	j := job{row: row, key: row.UserID}
	if r.st != nil {
		var err error
		j.prior, j.found, err = r.st.Probe(row.UserID) // an enrolled record is skipped, not read in full
		if err != nil {
			r.stop(err)
			r.pendingRow(row, "not reached: the store could not be read")
			return job{}, false
		}
	}
	// Found in memory (see seenSet): a row that is skipped writes nothing.
	if first := r.dups.Seen(row.UserID, row.Line); first != 0 {
		r.rejectRow(row, fmt.Sprintf("user_id: duplicate of line %d", first))
		return job{}, false
	}
	if j.found && j.prior.State == store.Enrolled {
		// Skipped without reading the photo or rewriting the record.
		r.skip()
		return job{}, false
	}
	rec := j.prior
	if !j.found {
		rec = store.Record{UserID: row.UserID}
	}
	if fieldErr != nil {
		rec.Invalidate(r.runID, row.Line, row.CreatedAt, row.Photo, fieldErr.Error(), now)
		r.settle(j.key, row, rec, "", fieldErr.Error())
		return job{}, false
	}
	if r.opts.DryRun {
		// A run checks the photo in the worker, as it reads it to send it.
		if err := r.dryCheckPhoto(&row); err != nil {
			rec.Invalidate(r.runID, row.Line, row.CreatedAt, row.Photo, err.Error(), now)
			r.settle(j.key, row, rec, "", err.Error())
			return job{}, false
		}
	}
	if j.found && j.prior.RejectedByAPI() && !r.opts.RetryRejected {
		if sum := rowSum(&row); sum != "" && sum == j.prior.PhotoSHA256 {
			reason := fmt.Sprintf("%s (refused before with this same photo; change the photo or use --retry-rejected)", j.prior.ResultText)
			rec.Run, rec.Line, rec.CreatedAt, rec.Photo = r.runID, row.Line, row.CreatedAt, row.Photo
			rec.Refuse(j.prior.ResultCode, j.prior.ResultText, reason, j.prior.PhotoSHA256, j.prior.OutcomeUnknown, now)
			r.settle(j.key, row, rec, rec.ResultCode, reason)
			return job{}, false
		}
	}
	if r.opts.Compare.Comparer != nil {
		if err := r.markCompare(&rec, row); err != nil {
			r.stop(err)
			r.pendingRow(row, "not reached: "+err.Error())
			return job{}, false
		}
	} else {
		rec.Mark(r.runID, row.Line, row.CreatedAt, row.Photo, now)
	}
	j.rec = rec
	return j, true
}

// rejectRow rejects a row that cannot own a user record (no usable user_id,
// a duplicate, a malformed record); its record is kept under its line.
func (r *runner) rejectRow(row manifest.Row, reason string) {
	var rec store.Record
	rec.UserID = row.UserID
	rec.Invalidate(r.runID, row.Line, row.CreatedAt, row.Photo, reason, r.opts.Now())
	r.settle(store.RowKey(row.Line), row, rec, "", reason)
}

// photoSum hashes the file at path, or returns "" if it cannot be read.
func photoSum(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dryCheckPhoto checks a photo offline as a run would before sending it:
// with FixPhotos, a photo that would be converted passes.
func (r *runner) dryCheckPhoto(row *manifest.Row) error {
	if !r.opts.FixPhotos {
		_, err := r.val.CheckPhoto(row)
		return err
	}
	head := make([]byte, fixHeadLen)
	size, n, err := manifest.ScanFile(row.PhotoPath, maxFixInput, head)
	if err != nil {
		return err
	}
	head = head[:n]
	if photofix.Needs(head, size, r.opts.MaxPhotoBytes) {
		return nil
	}
	if rerr := manifest.CheckHead(head); rerr != nil {
		return rerr
	}
	return nil
}
