package observe

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"sync"

	"bulkenroll/importer/event"
	"bulkenroll/importer/urlref"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Rejects writes the CSV of rows rejected in a run:
// line,user_id,user_created_at,photo,code,reason, the photo with a URL's
// secrets redacted (urlref.Redact). It is an event.Observer of the rows
// rejected in the run, and an event.Flusher: a failure to write the file
// becomes the run's error.
type Rejects struct {
	mu  sync.Mutex
	w   *csv.Writer
	rec [6]string
}

// NewRejects returns a rejects file writing to w, its header written.
func NewRejects(w io.Writer) *Rejects {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"line", "user_id", "user_created_at", "photo", "code", "reason"})
	return &Rejects{w: cw}
}

// Start does nothing: the header is written already.
func (r *Rejects) Start(func() event.Stats) {}

// Row writes a rejected row.
func (r *Rejects) Row(ev event.RowEvent) {
	if ev.State == store.Rejected {
		r.write(ev.Row, ev.Code, ev.Reason)
	}
}

// Finish does nothing: the pipeline calls Flush before it.
func (r *Rejects) Finish(event.Stats, error) {}

// write adds one row.
func (r *Rejects) write(row manifest.Row, code, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The reader redacts Photo already; redacting again costs nothing (it
	// is idempotent) and keeps a row made elsewhere from writing a secret.
	r.rec = [6]string{strconv.Itoa(row.Line), row.UserID, row.CreatedAt, urlref.Redact(row.Photo), code, reason}
	_ = r.w.Write(r.rec[:])
	r.w.Flush() // rejects are rare: keep the file current should the run die
}

// Flush writes out what is buffered and returns the first error writing
// the file, if any.
func (r *Rejects) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Flush()
	if err := r.w.Error(); err != nil {
		return fmt.Errorf("writing the rejects file: %w", err)
	}
	return nil
}
