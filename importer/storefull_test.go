package importer_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// enrollAll is a Submitter that enrolls every user and counts the requests.
type enrollAll struct{ n atomic.Int64 }

func (e *enrollAll) Submit(_ context.Context, u smileid.User) (*smileid.Result, error) {
	e.n.Add(1)
	return &smileid.Result{ResultCode: "0840", ResultText: "Enroll User", SmileJobID: "j-" + u.UserID}, nil
}

// TestRunFullStoreCountsWhatIsSaved: a run whose store fills up (a small
// tmpfs) stops with a *store.WriteError, stops sending, and counts as
// enrolled exactly the rows the store holds as enrolled by it; the others
// are pending, those whose answer was not saved counted apart.
func TestRunFullStoreCountsWhatIsSaved(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", disk).Run() })

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.jpg"), photoBytes(t, "jpeg", 1))
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"user_id", "user_created_at", "photo"})
	const rows = 3000
	for i := range rows {
		_ = w.Write([]string{fmt.Sprintf("u%05d", i), "2021-08-12", "p.jpg"})
	}
	w.Flush()
	m := filepath.Join(dir, "m.csv")
	writeFile(t, m, buf.Bytes())

	path := filepath.Join(disk, "s.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub := &enrollAll{}
	opts := fastOptions()
	opts.Workers = 8
	sum, err := run(t, context.Background(), m, st, sub, opts)
	st.Close()
	var we *store.WriteError
	if !errors.As(err, &we) {
		t.Fatalf("Run = %v, want a *store.WriteError (summary %+v)", err, sum)
	}
	if sum.Rows != rows || sum.Rows != sum.Enrolled+sum.Skipped+sum.Rejected+sum.Failed+sum.Pending {
		t.Errorf("summary %+v: want %d rows, each in one state", sum, rows)
	}
	if n := sub.n.Load(); n >= rows {
		t.Errorf("%d requests for %d rows: the run did not stop sending", n, rows)
	}
	ro, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	saved := 0
	if err := ro.Each(store.Enrolled, func(r store.Record) error {
		if r.Run == sum.RunID {
			saved++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests; summary %+v, %d not saved (%d answers); the store holds %d enrolled",
		sub.n.Load(), sum, sum.Unsaved, sum.UnsavedAnswers, saved)
	if sum.Enrolled != saved {
		t.Errorf("the summary counts %d enrolled, the store holds %d", sum.Enrolled, saved)
	}
	if int64(sum.Enrolled+sum.UnsavedAnswers) > sub.n.Load() || sum.UnsavedAnswers > sum.Unsaved || sum.Unsaved > sum.Pending {
		t.Errorf("summary %+v does not add up with %d requests", sum, sub.n.Load())
	}
}
