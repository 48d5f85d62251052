package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// withBucket registers an extra optional bucket for the test, whose values
// must be "ok".
func withBucket(t *testing.T, name string) []byte {
	t.Helper()
	saved := buckets
	b := []byte(name)
	buckets = append(append([]bucketSpec(nil), buckets...), bucketSpec{name: b, check: func(k, v []byte) error {
		if string(v) != "ok" {
			return &DamagedError{Key: string(k), Reason: "not ok"}
		}
		return nil
	}})
	t.Cleanup(func() { buckets = saved })
	return b
}

func hasBucket(t *testing.T, s *Store, name []byte) bool {
	t.Helper()
	var ok bool
	if err := s.view(func(tx *bolt.Tx) error { ok = tx.Bucket(name) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestRegisteredBucketCreated: a bucket in the registry is made in every
// new store.
func TestRegisteredBucketCreated(t *testing.T) {
	name := withBucket(t, "extra")
	s, _ := openTemp(t)
	if !hasBucket(t, s, name) {
		t.Errorf("a new store lacks the registered bucket %q", name)
	}
}

// TestRegisteredBucketAdded: a store made before the bucket existed opens
// (writing nothing) and gets it with its first run.
func TestRegisteredBucketAdded(t *testing.T) {
	s, path := openTemp(t)
	closeOK(t, s)
	name := withBucket(t, "extra")
	before := fileSum(t, path)
	s = reopen(t, path, Options{})
	if hasBucket(t, s, name) {
		t.Fatalf("the old store has %q before its first run", name)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, path) != before {
		t.Errorf("opening the store wrote to it")
	}
	if _, err := s.BeginRun("m.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	if !hasBucket(t, s, name) {
		t.Errorf("BeginRun did not add the registered bucket %q", name)
	}
	closeOK(t, s)
	// A required bucket missing is no store at all.
	buckets[len(buckets)-1].required = true
	s = reopen(t, path, Options{})
	if err := s.update(func(tx *bolt.Tx) error { return tx.DeleteBucket(name) }); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "missing buckets") {
		t.Errorf("a store without a required bucket: %v, want ErrNotStore (missing buckets)", err)
	}
}

// TestRegisteredBucketChecked: the check before a run's first write
// verifies the values of a registered bucket with its check, and the error
// names the bucket and the key.
func TestRegisteredBucketChecked(t *testing.T) {
	name := withBucket(t, "extra")
	s, path := openTemp(t)
	if err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if err := b.Put([]byte("a"), []byte("ok")); err != nil {
			return err
		}
		return b.Put([]byte("b"), []byte("bad"))
	}); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	err := Check(path)
	var d *DamagedError
	if !errors.As(err, &d) || d.Bucket != "extra" || d.Key != "b" {
		t.Fatalf("Check: %v, want a *DamagedError in bucket extra, key b", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"extra" bucket`) || !strings.Contains(msg, `"b"`) {
		t.Errorf("message %q does not name the bucket and the key", msg)
	}
	if _, err := Open(path, Options{}); !isDamaged(err) {
		t.Errorf("a writable Open of the damaged store: %v, want damaged", err)
	}
}
