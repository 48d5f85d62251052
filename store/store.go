// Package store is the bbolt checkpoint store of bulkenroll: one record per
// user with its state, the run history, and the partner ID and base URL the
// store was made for. Writes are batched by a single writer goroutine (group
// commit) so that the per-row cost is far below one fsync.
//
// It knows nothing of manifests, of Smile ID's API or of the pipeline: it
// keeps what they hand it. The files, by concern:
//
//   - store.go: the Store, Close and Flush; buckets.go: the registry of
//     its buckets (and how to add one) and the meta keys.
//   - open.go: Open and the creation of a new store; forensics.go: the
//     header checks made before bbolt reads a file; check.go: the full
//     check of an existing store before its first write; salvage.go:
//     reading what is left of a damaged one, without bbolt.
//   - meta.go: what a store is bound to (partner ID and base URL, shard)
//     and what it learned (the rate); product.go: the one product it
//     holds, and the job IDs it derives for products that choose them.
//   - record.go: the Record and its transitions; codec.go: its binary
//     form; records.go: reading and writing records.
//   - runs.go: the run history; writer.go: the group-commit writer.
//   - tx.go: the one guarded transaction helper every read and write uses;
//     errors.go: the errors the store returns.
//   - upgrade.go: rewriting the records of earlier versions; live.go: a
//     running import's snapshot beside the store.
package store

import (
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// formatVersion is written into every store this code creates.
const formatVersion = "bulkenroll-store-1"

// Options tune Open.
type Options struct {
	// ReadOnly opens the store for reading; the file must exist.
	ReadOnly bool
	// LockTimeout is how long to wait for another process's lock; default 200ms.
	LockTimeout time.Duration
	// NoSync skips fsync (tests and benchmarks of the store's own overhead only).
	NoSync bool
}

// Store is an open checkpoint store. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	w    *writer

	reads atomic.Int64 // records read by Get and Probe (see releaseEvery)
	id    atomic.Value // []byte: the store's identity, once read (see JobID)
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Err returns the first commit error, if any (always nil for a read-only
// store, which writes nothing).
func (s *Store) Err() error {
	if s.w == nil {
		return nil
	}
	return s.w.error()
}

// Flush waits until every queued write is committed (nothing to wait for
// in a read-only store).
func (s *Store) Flush() error {
	if s.w == nil {
		return nil
	}
	return s.w.flush()
}

// Close flushes queued writes and closes the file.
func (s *Store) Close() error {
	var err error
	if s.w != nil {
		err = s.w.close()
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Size returns the store file's size in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.view(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n
}
