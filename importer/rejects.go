package importer

import (
	"encoding/csv"
	"io"
	"strconv"

	"bulkenroll/manifest"
)

// rejectsWriter writes the CSV of rows rejected in a run:
// line,user_id,user_created_at,photo,code,reason.
type rejectsWriter struct {
	w   *csv.Writer
	rec [6]string
}

func newRejectsWriter(w io.Writer) *rejectsWriter {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"line", "user_id", "user_created_at", "photo", "code", "reason"})
	return &rejectsWriter{w: cw}
}

// write adds one row; callers serialize.
func (r *rejectsWriter) write(row manifest.Row, code, reason string) {
	r.rec = [6]string{strconv.Itoa(row.Line), row.UserID, row.CreatedAt, row.Photo, code, reason}
	_ = r.w.Write(r.rec[:])
	r.w.Flush() // rejects are rare: keep the file current should the run die
}

func (r *rejectsWriter) flush() error {
	r.w.Flush()
	return r.w.Error()
}
