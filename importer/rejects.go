package importer

import (
	"encoding/csv"
	"io"
	"strconv"
	"sync"

	"bulkenroll/importer/urlref"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// rejectsWriter writes the CSV of rows rejected in a run:
// line,user_id,user_created_at,photo,code,reason, the photo with a URL's
// secrets redacted (urlref.Redact).
// It is an Observer of the rows rejected in the run.
type rejectsWriter struct {
	mu  sync.Mutex
	w   *csv.Writer
	rec [6]string
}

func newRejectsWriter(w io.Writer) *rejectsWriter {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"line", "user_id", "user_created_at", "photo", "code", "reason"})
	return &rejectsWriter{w: cw}
}

// Start does nothing: the header is written already.
func (r *rejectsWriter) Start(func() Stats) {}

// Row writes a rejected row.
func (r *rejectsWriter) Row(ev RowEvent) {
	if ev.State == store.Rejected {
		r.write(ev.Row, ev.Code, ev.Reason)
	}
}

// Finish does nothing: Run flushes and reports the file's error.
func (r *rejectsWriter) Finish(Stats, error) {}

// write adds one row.
func (r *rejectsWriter) write(row manifest.Row, code, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The reader redacts Photo already; redacting again costs nothing (it
	// is idempotent) and keeps a row made elsewhere from writing a secret.
	r.rec = [6]string{strconv.Itoa(row.Line), row.UserID, row.CreatedAt, urlref.Redact(row.Photo), code, reason}
	_ = r.w.Write(r.rec[:])
	r.w.Flush() // rejects are rare: keep the file current should the run die
}

func (r *rejectsWriter) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Flush()
	return r.w.Error()
}
