package store

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTemp opens a new store in a temporary folder; the test closes it.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, path
}

// closeOK closes s and fails the test on an error.
func closeOK(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// reopen opens path again, closed when the test ends.
func reopen(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("reopening %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rec makes a record for user id in state st with n attempts.
func rec(id string, st State, n int) Record {
	return Record{
		UserID: id, State: st, Line: n + 1, CreatedAt: "2021-08-12", Photo: id + ".jpg",
		PhotoSHA256: fmt.Sprintf("%064x", n), Attempts: n, ResultCode: "0840", ResultText: "Enroll User",
		SmileJobID: fmt.Sprint(1000 + n), Error: "", Run: 7,
		UpdatedAt: time.Date(2024, 5, 1, 12, 0, n%60, 123_000_000, time.UTC),
	}
}

// fileSum is the SHA-256 of a file's bytes.
func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mustGet returns the record under key, failing the test if it is absent.
func mustGet(t testing.TB, s *Store, key string) Record {
	t.Helper()
	r, ok, err := s.Get(key)
	if err != nil || !ok {
		t.Fatalf("Get(%q) = found %v, %v", key, ok, err)
	}
	return r
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	s, path := openTemp(t)
	defer closeOK(t, s)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("store file mode %v, want 0600", perm)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q", s.Path())
	}
	m, err := s.Meta()
	if err != nil || m.CreatedAt == "" || m.PartnerID != "" || m.BaseURL != "" {
		t.Errorf("Meta of a new store = %+v, %v", m, err)
	}
	if s.Size() <= 0 {
		t.Errorf("Size() = %d", s.Size())
	}
}

func TestOpenLocked(t *testing.T) {
	s, path := openTemp(t)
	// bbolt's flock belongs to the open file description, so a second Open
	// in this same process must meet the lock.
	for _, ro := range []bool{false, true} {
		s2, err := Open(path, Options{ReadOnly: ro, LockTimeout: 50 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			if s2 != nil {
				s2.Close()
			}
			t.Fatalf("second Open (read-only %v) = %v, want ErrLocked", ro, err)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("message %q should name the file and say it is in use", err)
		}
	}
	// The default time-out applies too.
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open with the default time-out = %v", err)
	}
	closeOK(t, s)
	s3, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	closeOK(t, s3)

	// Two readers share the file.
	r1 := reopen(t, path, Options{ReadOnly: true})
	r2 := reopen(t, path, Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("writer Open while readers hold the store = %v, want ErrLocked", err)
	}
	_, _ = r1, r2
}

// bigStore makes a store of several pages and returns its bytes.
func bigStore(t *testing.T) []byte {
	t.Helper()
	s, path := openTemp(t)
	keys := make([]string, 500)
	recs := make([]Record, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%05d", i)
		recs[i] = rec(keys[i], Enrolled, i)
		recs[i].Error = strings.Repeat("e", 200)
	}
	if err := s.putDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenNotStore(t *testing.T) {
	full := bigStore(t)
	pageSize := os.Getpagesize()
	if len(full) < 8*pageSize {
		t.Fatalf("the sample store has only %d bytes", len(full))
	}
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	foreign := func() []byte {
		path := filepath.Join(t.TempDir(), "foreign.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("sessions"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		b, _ := os.ReadFile(path)
		return b
	}()
	cases := []struct {
		name string
		data []byte
	}{
		{"text", []byte("user_id,user_created_at,photo\nu1,2021-01-01,a.jpg\n")},
		{"one byte", []byte{0}},
		{"random", random},
		{"zeros", make([]byte, 4*pageSize)},
		{"half a store", full[:len(full)/2+100]},
		{"header only", full[:100]},
		{"first pages only", full[:4*pageSize]},
		{"cut at a page boundary", full[:len(full)/2/pageSize*pageSize]},
		{"another bbolt program's file", foreign},
		{"JSON", []byte(`{"users":[]}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bulkenroll.db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			before := fileSum(t, path)
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
					t.Fatalf("Open (read-only %v) accepted it", ro)
				}
				if !errors.Is(err, ErrNotStore) {
					t.Errorf("Open (read-only %v) = %v, want ErrNotStore", ro, err)
				}
				if after := fileSum(t, path); after != before {
					t.Fatalf("Open (read-only %v) changed the file", ro)
				}
			}
		})
	}
	t.Run("folder", func(t *testing.T) {
		if _, err := Open(t.TempDir(), Options{}); !errors.Is(err, ErrNotStore) {
			t.Errorf("Open of a folder = %v, want ErrNotStore", err)
		}
	})
	t.Run("intact copy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, full, 0o600); err != nil {
			t.Fatal(err)
		}
		s := reopen(t, path, Options{ReadOnly: true})
		if r := mustGet(t, s, "user-00499"); r.Attempts != 499 {
			t.Errorf("record from the copy: %+v", r)
		}
	})
	t.Run("unused tail cut", func(t *testing.T) {
		// bbolt grows its file ahead of the data; losing pages past the
		// data loses nothing, and the store still opens.
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, full[:len(full)-pageSize], 0o600); err != nil {
			t.Fatal(err)
		}
		s := reopen(t, path, Options{})
		if r := mustGet(t, s, "user-00499"); r.Attempts != 499 {
			t.Errorf("record from the copy: %+v", r)
		}
	})
}

func TestOpenReadOnlyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open read-only of a missing file = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only Open created the file")
	}
}

func TestReadOnly(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Bind("p1", "https://x"); err != nil {
		t.Fatal(err)
	}
	s.Put("u1", rec("u1", Failed, 2))
	closeOK(t, s)
	ro := reopen(t, path, Options{ReadOnly: true})
	if r := mustGet(t, ro, "u1"); r.State != Failed || r.Attempts != 2 {
		t.Errorf("read-only Get: %+v", r)
	}
	if err := ro.Err(); err != nil {
		t.Errorf("Err on a read-only store: %v", err)
	}
	if err := ro.Flush(); err != nil {
		t.Errorf("Flush on a read-only store: %v", err)
	}
	counts, err := ro.Counts()
	if err != nil || counts[Failed] != 1 {
		t.Errorf("Counts = %v, %v", counts, err)
	}
	if err := ro.CheckBinding("p1", "https://x"); err != nil {
		t.Errorf("CheckBinding: %v", err)
	}
	if err := ro.Bind("p2", "https://y"); !errors.Is(err, ErrMismatch) {
		t.Errorf("Bind with another partner on a read-only store = %v", err)
	}
	if _, err := ro.BeginRun("m.csv", time.Now()); err == nil {
		t.Errorf("BeginRun on a read-only store succeeded")
	}
}

func TestBinding(t *testing.T) {
	s, path := openTemp(t)
	if err := s.CheckBinding("p1", "https://a"); err != nil {
		t.Errorf("an unbound store refused a binding: %v", err)
	}
	if err := s.Bind("p1", "https://a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind("p1", "https://a"); err != nil {
		t.Errorf("binding again to the same: %v", err)
	}
	cases := []struct {
		partner, base string
		ok            bool
	}{
		{"p1", "https://a", true},
		{"p2", "https://a", false},
		{"p1", "https://b", false},
		{"P1", "https://a", false},
		{"p1", "https://a/", false},
		{"", "", false},
	}
	for _, c := range cases {
		err := s.CheckBinding(c.partner, c.base)
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrMismatch)) {
			t.Errorf("CheckBinding(%q, %q) = %v", c.partner, c.base, err)
		}
		if !c.ok {
			if berr := s.Bind(c.partner, c.base); !errors.Is(berr, ErrMismatch) {
				t.Errorf("Bind(%q, %q) = %v, want ErrMismatch", c.partner, c.base, berr)
			}
		}
	}
	err := s.CheckBinding("p2", "https://b")
	if err == nil || !strings.Contains(err.Error(), `"p1"`) || !strings.Contains(err.Error(), "https://a") {
		t.Errorf("mismatch message %q should name the store's binding", err)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{})
	m, err := s.Meta()
	if err != nil || m.PartnerID != "p1" || m.BaseURL != "https://a" {
		t.Errorf("Meta after reopening = %+v, %v", m, err)
	}
	if err := s.CheckBinding("p2", "https://a"); !errors.Is(err, ErrMismatch) {
		t.Errorf("binding lost on reopening: %v", err)
	}
}

// TestPutVisibleBeforeCommit holds bbolt's writer lock so that the store
// cannot commit, and checks that Get sees a queued Put all the same.
func TestPutVisibleBeforeCommit(t *testing.T) {
	s, path := openTemp(t)
	tx, err := s.db.Begin(true) // blocks the store's writer
	if err != nil {
		t.Fatal(err)
	}
	want := rec("u1", Pending, 1)
	s.Put("u1", want)
	want2 := rec("u1", Enrolled, 2)
	s.Put("u1", want2)
	s.Put("u2", rec("u2", Failed, 3))
	if got := mustGet(t, s, "u1"); !reflect.DeepEqual(got, want2) {
		t.Errorf("Get before commit = %+v, want %+v", got, want2)
	}
	if got := mustGet(t, s, "u2"); got.State != Failed {
		t.Errorf("Get before commit = %+v", got)
	}
	// Nothing is on disk yet.
	var onDisk []byte
	if err := s.db.View(func(vtx *bolt.Tx) error {
		onDisk = vtx.Bucket(bucketUsers).Get([]byte("u1"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if onDisk != nil {
		t.Fatalf("the record was committed while the writer was blocked")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.w.overlay); n != 0 {
		t.Errorf("%d records still queued after Flush", n)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	if got := mustGet(t, s, "u1"); !reflect.DeepEqual(got, want2) {
		t.Errorf("after reopening: %+v, want the latest %+v", got, want2)
	}
}

func TestPutBatchDurable(t *testing.T) {
	s, path := openTemp(t)
	if err := s.putDurable(nil, nil); err != nil {
		t.Errorf("putDurable of nothing: %v", err)
	}
	keys := []string{"a", "b", RowKey(3)}
	recs := []Record{rec("a", Pending, 1), rec("b", Pending, 2), rec("", Rejected, 0)}
	if err := s.putDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	// Committed: visible on disk without going through the queue.
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if tx.Bucket(bucketUsers).Get([]byte(k)) == nil {
				return fmt.Errorf("%q is not committed", k)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// Close without Flush: reopening must find them.
	if err := s.db.Close(); err != nil { // no writer flush: what putDurable made durable must be there
		t.Fatal(err)
	}
	s.w.close() //nolint:errcheck // the database is closed already
	s2 := reopen(t, path, Options{ReadOnly: true})
	for i, k := range keys {
		if got := mustGet(t, s2, k); !reflect.DeepEqual(got, recs[i]) {
			t.Errorf("%q after reopening = %+v, want %+v", k, got, recs[i])
		}
	}
}

func TestFlushAndClosePersist(t *testing.T) {
	s, path := openTemp(t)
	want := map[string]Record{}
	for i := range 3000 {
		id := fmt.Sprintf("user-%05d", i)
		want[id] = rec(id, States[i%4], i%9)
		s.Put(id, want[id])
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 500 { // queued after the flush: Close must save them
		id := fmt.Sprintf("late-%03d", i)
		want[id] = rec(id, Pending, 1)
		s.Put(id, want[id])
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	n := 0
	if err := s.Each("", func(r Record) error {
		n++
		if w, ok := want[r.UserID]; !ok || !reflect.DeepEqual(r, w) {
			return fmt.Errorf("record %+v, want %+v", r, w)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("%d records after reopening, want %d", n, len(want))
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, path := openTemp(t)
	const goroutines, keys, versions = 16, 60, 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for k := range keys {
				id := fmt.Sprintf("g%02d-k%03d", g, k)
				for v := 1; v <= versions; v++ {
					r := rec(id, Pending, v)
					if v == versions {
						r.State = Enrolled
					}
					if k%10 == 0 {
						if err := s.putDurable([]string{id}, []Record{r}); err != nil {
							errs <- err
							return
						}
					} else {
						s.Put(id, r)
					}
					// Read your own write, whatever the writer is doing.
					got, ok, err := s.Get(id)
					if err != nil || !ok || got.Attempts != v {
						errs <- fmt.Errorf("%s: Get after Put of version %d = %+v, %v, %v", id, v, got, ok, err)
						return
					}
				}
			}
		})
	}
	// Readers and flushers racing with the writers.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Counts(); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	counts, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[Enrolled] != goroutines*keys || counts[Pending] != 0 {
		t.Errorf("counts %v, want %d enrolled: an older version overwrote a newer one", counts, goroutines*keys)
	}
	_ = s.Each("", func(r Record) error {
		if r.Attempts != versions {
			t.Errorf("%s: attempts %d, want %d", r.UserID, r.Attempts, versions)
		}
		return nil
	})
}

func TestClearRowRecords(t *testing.T) {
	s, _ := openTemp(t)
	defer closeOK(t, s)
	users := []string{"a", "zz", "\x01odd", "line:000000003"}
	for _, u := range users {
		s.Put(u, rec(u, Enrolled, 1))
	}
	for line := 2; line < 8; line++ {
		r := rec("dup", Rejected, 0)
		r.Line = line
		if line%2 == 0 {
			if err := s.putDurable([]string{RowKey(line)}, []Record{r}); err != nil {
				t.Fatal(err)
			}
		} else {
			s.Put(RowKey(line), r) // still queued: must go too
		}
	}
	if err := s.ClearRowRecords(); err != nil {
		t.Fatal(err)
	}
	for line := 2; line < 8; line++ {
		if _, ok, _ := s.Get(RowKey(line)); ok {
			t.Errorf("row record of line %d survived", line)
		}
	}
	var got []string
	_ = s.Each("", func(r Record) error { got = append(got, r.UserID); return nil })
	sort.Strings(got)
	want := append([]string(nil), users...)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records after ClearRowRecords = %q, want %q", got, want)
	}
	if err := s.ClearRowRecords(); err != nil {
		t.Errorf("ClearRowRecords with nothing to clear: %v", err)
	}
}

func TestRowKey(t *testing.T) {
	if k := RowKey(42); k != "\x00line:000000042" || !strings.HasPrefix(k, RowKeyPrefix) {
		t.Errorf("RowKey(42) = %q", k)
	}
	keys := []string{RowKey(10), "!", " ", RowKey(9), "0", "user"}
	sort.Strings(keys)
	if keys[0] != RowKey(9) || keys[1] != RowKey(10) {
		t.Errorf("row keys do not sort first, in line order: %q", keys)
	}
}

func TestRejectedByAPI(t *testing.T) {
	cases := []struct {
		r    Record
		want bool
	}{
		{Record{State: Rejected, ResultCode: "2213"}, true},
		{Record{State: Rejected}, false},
		{Record{State: Failed, ResultCode: "2201"}, false},
		{Record{State: Enrolled, ResultCode: "0840"}, false},
	}
	for _, c := range cases {
		if got := c.r.RejectedByAPI(); got != c.want {
			t.Errorf("RejectedByAPI(%+v) = %v", c.r, got)
		}
	}
}

func TestEachAndCounts(t *testing.T) {
	s, _ := openTemp(t)
	defer closeOK(t, s)
	counts, err := s.Counts()
	if err != nil || len(counts) != 4 || counts[Enrolled] != 0 || counts[Pending] != 0 {
		t.Errorf("Counts of an empty store = %v, %v", counts, err)
	}
	want := map[State]int{Enrolled: 5, Rejected: 3, Failed: 2, Pending: 1}
	i := 0
	for st, n := range want {
		for range n {
			id := fmt.Sprintf("u%02d", i)
			s.Put(id, rec(id, st, i))
			i++
		}
	}
	counts, err = s.Counts()
	if err != nil || !reflect.DeepEqual(counts, want) {
		t.Errorf("Counts = %v, %v; want %v", counts, err, want)
	}
	for st, n := range want {
		var seen []string
		if err := s.Each(st, func(r Record) error {
			if r.State != st {
				t.Errorf("Each(%s) gave a %s record", st, r.State)
			}
			seen = append(seen, r.UserID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != n || !sort.StringsAreSorted(seen) {
			t.Errorf("Each(%s) = %q, want %d records in key order", st, seen, n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Each("", func(Record) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Each did not stop at the callback's error: %v after %d calls", err, calls)
	}
}

func TestRuns(t *testing.T) {
	s, path := openTemp(t)
	if _, ok, err := s.LastRun(); ok || err != nil {
		t.Errorf("LastRun of a new store: found %v, %v", ok, err)
	}
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	r1, err := s.BeginRun("a.csv", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID != 1 || r1.Outcome != "running" || r1.Manifest != "a.csv" || !r1.Started.Equal(t0) || r1.Started.Location() != time.UTC {
		t.Errorf("first run %+v", r1)
	}
	last, ok, err := s.LastRun()
	if err != nil || !ok || last.ID != 1 || last.Outcome != "running" {
		t.Errorf("LastRun = %+v, %v, %v", last, ok, err)
	}
	r2, err := s.BeginRun("-", t0.Add(time.Minute))
	if err != nil || r2.ID != 2 {
		t.Fatalf("second run %+v, %v", r2, err)
	}
	// EndRun saves queued records first.
	s.Put("u1", rec("u1", Enrolled, 1))
	r2.Ended = t0.Add(2 * time.Minute).UTC()
	r2.Outcome = "finished"
	r2.Counts = map[string]int{"rows": 3, "enrolled": 1, "skipped": 2}
	if err := s.EndRun(r2); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte("u1")) == nil {
			return errors.New("EndRun did not flush the queued record")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	r1.Outcome = "interrupted"
	if err := s.EndRun(r1); err != nil {
		t.Fatal(err)
	}
	last, _, _ = s.LastRun()
	if last.ID != 2 || last.Outcome != "finished" || last.Counts["skipped"] != 2 || !last.Ended.Equal(r2.Ended) {
		t.Errorf("LastRun = %+v, want run 2 finished", last)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{})
	r3, err := s.BeginRun("c.csv", time.Now())
	if err != nil || r3.ID != 3 {
		t.Errorf("run after reopening: %+v, %v", r3, err)
	}
	var outcomes []string
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(_, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			outcomes = append(outcomes, fmt.Sprint(r.ID, r.Outcome))
			return nil
		})
	})
	if want := []string{"1interrupted", "2finished", "3running"}; !reflect.DeepEqual(outcomes, want) {
		t.Errorf("run history %q, want %q", outcomes, want)
	}
}

func TestParseState(t *testing.T) {
	for _, st := range States {
		got, err := ParseState(string(st))
		if err != nil || got != st {
			t.Errorf("ParseState(%q) = %q, %v", st, got, err)
		}
	}
	for _, bad := range []string{"", "Enrolled", "done", " pending", "failed\n"} {
		if _, err := ParseState(bad); err == nil || !strings.Contains(err.Error(), "enrolled, rejected, failed or pending") {
			t.Errorf("ParseState(%q) = %v, want an error listing the states", bad, err)
		}
	}
}

func TestAfterClose(t *testing.T) {
	s, _ := openTemp(t)
	closeOK(t, s)
	s.Put("late", rec("late", Pending, 1)) // must not panic or block
	if err := s.putDurable([]string{"late"}, []Record{rec("late", Pending, 1)}); err == nil {
		t.Errorf("putDurable after Close succeeded")
	}
}

// TestWriterStaleQueueEntry plays the race of two callers putting one key:
// the first registers its record, the second registers and queues a newer
// one, and only then does the first reach the queue. The newer record must
// win on disk.
func TestWriterStaleQueueEntry(t *testing.T) {
	s, path := openTemp(t)
	older, newer := rec("k", Pending, 1), rec("k", Enrolled, 2)
	w := s.w
	// Keep the writer busy on another record, so that both entries of "k"
	// reach it in one batch.
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	s.Put("other", rec("other", Failed, 1))
	for len(w.queue) > 0 {
		time.Sleep(time.Millisecond)
	}
	w.mu.Lock()
	w.seq++
	stale := op{key: "k", rec: older, seq: w.seq}
	w.overlay["k"] = stale
	w.mu.Unlock()
	s.Put("k", newer)
	w.queue <- stale
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "k"); got.Attempts != 2 {
		t.Errorf("Get = %+v, want the newer record", got)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	if got := mustGet(t, s, "k"); !reflect.DeepEqual(got, newer) {
		t.Errorf("on disk: %+v, want the newer %+v", got, newer)
	}
}

func TestPutBatch(t *testing.T) {
	s, path := openTemp(t)
	if err := <-s.PutBatch(nil, nil); err != nil {
		t.Errorf("PutBatch of nothing: %v", err)
	}
	tx, err := s.db.Begin(true) // hold the writer back
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"b1", "b2", "b3"}
	recs := []Record{rec("b1", Pending, 1), rec("b2", Pending, 2), rec("b3", Pending, 3)}
	done := s.PutBatch(keys, recs)
	for i, k := range keys {
		if got := mustGet(t, s, k); !reflect.DeepEqual(got, recs[i]) {
			t.Errorf("Get(%q) before the commit = %+v", k, got)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("PutBatch reported %v while the writer could not commit", err)
	default:
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if tx.Bucket(bucketUsers).Get([]byte(k)) == nil {
				return fmt.Errorf("%q is not committed", k)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	if got := mustGet(t, s, "b3"); got.Attempts != 3 {
		t.Errorf("after reopening: %+v", got)
	}
}
