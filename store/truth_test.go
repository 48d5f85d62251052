package store

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestOpenAndChecksWriteNothing: opening an existing store for writing,
// checking its binding and shard, arming the binding, flushing and closing
// it leave the file byte for byte as it was, refused or not.
func TestOpenAndChecksWriteNothing(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Bind("p1", "https://a"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindShard("0/2"); err != nil {
		t.Fatal(err)
	}
	if err := s.putDurable([]string{"u1"}, []Record{rec("u1", Enrolled, 1)}); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	before := fileSum(t, path)

	for _, tc := range []struct {
		name  string
		check func(*Store) error
		want  error
	}{
		{"nothing", func(*Store) error { return nil }, nil},
		{"same binding", func(s *Store) error { return s.BindOnAnswer("p1", "https://a") }, nil},
		{"other partner", func(s *Store) error { return s.BindOnAnswer("p2", "https://a") }, ErrMismatch},
		{"same shard", func(s *Store) error { return s.CheckShard("0/2") }, nil},
		{"same shard, bound", func(s *Store) error { return s.BindShard("0/2") }, nil},
		{"other shard", func(s *Store) error { return s.CheckShard("1/2") }, ErrShardMismatch},
		{"no shard", func(s *Store) error { return s.BindShard("") }, ErrShardMismatch},
		{"no row records to clear", func(s *Store) error { return s.ClearRowRecords() }, nil},
		{"flush", func(s *Store) error { return s.Flush() }, nil},
	} {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("%s: Open: %v", tc.name, err)
		}
		if err := tc.check(s); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		closeOK(t, s)
		if fileSum(t, path) != before {
			t.Fatalf("%s: the file changed", tc.name)
		}
	}
}

// TestBindOnAnswer: a store is bound by the first commit that saves an
// answer, in that commit; records without an answer leave it unbound.
func TestBindOnAnswer(t *testing.T) {
	s, path := openTemp(t)
	if err := s.BindOnAnswer("p1", "https://a"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	s.PutThen("u1", rec("u1", Rejected, 1), func(err error) { done <- err })
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("PutThen: %v", err)
	}
	if m, _ := s.Meta(); m.PartnerID != "" || m.BaseURL != "" {
		t.Fatalf("bound by a record without an answer: %+v", m)
	}
	// Another partner may still use the unbound store.
	if err := s.CheckBinding("p2", "https://b"); err != nil {
		t.Fatalf("CheckBinding of an unbound store: %v", err)
	}
	s.PutAnswer("u2", rec("u2", Enrolled, 1), func(err error) { done <- err })
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("PutAnswer: %v", err)
	}
	closeOK(t, s)
	ro := reopen(t, path, Options{ReadOnly: true})
	if m, _ := ro.Meta(); m.PartnerID != "p1" || m.BaseURL != "https://a" {
		t.Errorf("after an answer the store is bound to %+v, want p1 at https://a", m)
	}
	if err := ro.CheckBinding("p2", "https://a"); !errors.Is(err, ErrMismatch) {
		t.Errorf("CheckBinding(p2) = %v, want ErrMismatch", err)
	}
}

// TestPutThenAfterCommit: then is called once the record is on disk (a
// reader of the file sees it), and with a *WriteError when the commit
// fails, as is every write queued after it.
func TestPutThenAfterCommit(t *testing.T) {
	s, path := openTemp(t)
	var mu sync.Mutex
	var got []error
	then := func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}
	s.PutThen("u1", rec("u1", Enrolled, 1), func(err error) {
		then(err)
		// The commit is done: the record is in the file.
		_ = s.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketUsers).Get([]byte("u1")) == nil {
				t.Error("then was called before the record was committed")
			}
			return nil
		})
	})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Make the next commit fail: close bbolt under the writer.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s.PutThen("u2", rec("u2", Enrolled, 1), then)
	s.PutAnswer("u3", rec("u3", Enrolled, 1), then)
	ferr := s.Flush()
	var we *WriteError
	if !errors.As(ferr, &we) || we.Path != path {
		t.Fatalf("Flush after a failed commit = %v, want a *WriteError naming %s", ferr, path)
	}
	s.PutThen("u4", rec("u4", Enrolled, 1), then)
	_ = s.Flush()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 || got[0] != nil {
		t.Fatalf("then got %v, want nil and three errors", got)
	}
	for _, err := range got[1:] {
		if !errors.As(err, &we) {
			t.Errorf("then got %v, want a *WriteError", err)
		}
	}
	if !errors.As(s.Err(), &we) {
		t.Errorf("Err = %v, want the *WriteError", s.Err())
	}
}

// mountTmpfs mounts a tmpfs of size at a new folder, or skips the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// fill writes to a file in dir until the disk is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{1}, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

// TestCreateFailureLeavesNoFile: a store that cannot be created (no
// space) leaves no file behind, not even a temporary one.
func TestCreateFailureLeavesNoFile(t *testing.T) {
	dir := mountTmpfs(t, "64k")
	fill(t, dir)
	os.Remove(filepath.Join(dir, "filler"))
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 52<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.db")
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open on a full disk succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "big" {
			t.Errorf("left behind: %s (Open: %v)", e.Name(), err)
		}
	}
}

// TestWriteLiveOnFullDisk: the last snapshot of a run is written even when
// the disk is full, in place of the one before.
func TestWriteLiveOnFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "64k")
	path := filepath.Join(dir, "s.db")
	l := Live{PID: 1, RunID: 3, Manifest: "m.csv", Started: time.Now(), Updated: time.Now(), Rows: 5}
	if err := WriteLive(path, l); err != nil {
		t.Fatal(err)
	}
	fill(t, dir)
	l.Done, l.EndNotRecorded, l.Rows = true, "no space left on device", 9
	if err := WriteLive(path, l); err != nil {
		t.Fatalf("WriteLive on a full disk: %v", err)
	}
	got, err := ReadLive(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Done || got.Rows != 9 || got.EndNotRecorded != l.EndNotRecorded {
		t.Errorf("ReadLive = %+v, want the last snapshot", got)
	}
}

// TestCheckLive: the live file's folder must take a new file, and its
// name must not be a folder.
func TestCheckLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	if err := CheckLive(path); err != nil {
		t.Fatalf("CheckLive: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("CheckLive left %d files", len(entries))
	}
	if err := os.Mkdir(LivePath(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckLive(path); err == nil || !bytes.Contains([]byte(err.Error()), []byte(LivePath(path))) {
		t.Errorf("CheckLive with a folder in the way = %v, want an error naming it", err)
	}
	if err := CheckLive(filepath.Join(dir, "missing", "s.db")); err == nil {
		t.Error("CheckLive in a missing folder succeeded")
	}
}
