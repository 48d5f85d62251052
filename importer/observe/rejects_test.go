package observe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"bulkenroll/importer/event"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// TestRejectsWriterRedacts: the rejects file writes a photo URL with its
// secrets redacted, even for a row whose Photo was not redacted by the
// reader; other states are not written.
func TestRejectsWriterRedacts(t *testing.T) {
	var b bytes.Buffer
	w := NewRejects(&b)
	w.Row(event.RowEvent{State: store.Rejected, Code: "", Reason: "photo: no such object (HTTP 404)",
		Row: manifest.Row{Line: 2, UserID: "u1", CreatedAt: "2021-08-12", Photo: "https://u:pw@h/p.jpg?X-Amz-Signature=abc123"}})
	w.Row(event.RowEvent{State: store.Rejected, Code: "2213", Reason: "too large",
		Row: manifest.Row{Line: 3, UserID: "u2", CreatedAt: "2021-08-12", Photo: "photos/a b.jpg"}})
	w.Row(event.RowEvent{State: store.Failed, Row: manifest.Row{Line: 4, UserID: "u3", Photo: "https://h/q.jpg?sig=zzz"}})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "line,user_id,user_created_at,photo,code,reason\n" +
		"2,u1,2021-08-12,https://REDACTED@h/p.jpg?X-Amz-Signature=REDACTED,,photo: no such object (HTTP 404)\n" +
		"3,u2,2021-08-12,photos/a b.jpg,2213,too large\n"
	if b.String() != want {
		t.Errorf("rejects file:\n%s\nwant:\n%s", b.String(), want)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestRejectsFlushError: a rejects file that cannot be written makes Flush
// fail with an error naming the file and wrapping the cause; Rejects is an
// event.Flusher, so that error becomes the run's.
func TestRejectsFlushError(t *testing.T) {
	var w event.Observer = NewRejects(failingWriter{})
	w.Row(event.RowEvent{State: store.Rejected, Code: "2213", Reason: "too large",
		Row: manifest.Row{Line: 2, UserID: "u1", CreatedAt: "2021-08-12", Photo: "a.jpg"}})
	f, ok := w.(event.Flusher)
	if !ok {
		t.Fatal("Rejects is not an event.Flusher")
	}
	err := f.Flush()
	if err == nil || !strings.Contains(err.Error(), "writing the rejects file") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Flush = %v, want the rejects file's write error", err)
	}
	if err := NewRejects(&bytes.Buffer{}).Flush(); err != nil {
		t.Errorf("Flush of a writable file = %v", err)
	}
}
