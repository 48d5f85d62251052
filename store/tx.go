package store

// Every transaction of the store goes through the helpers of this file
// (viewTx, viewTxAt, updateTx, and Store.view and Store.update on top of
// them): bbolt panics on a page it cannot make sense of, and guard turns
// that into a *DamagedError instead of a crash.

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// guard runs fn, turning a panic (bbolt panics on pages it cannot make
// sense of) into a *DamagedError. where, if not nil, is asked for the key
// last handled, so the error can place the damage.
func guard(fn func() error, where func() string) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		d := &DamagedError{Reason: fmt.Sprint(p)}
		if where != nil {
			d.After = where()
		}
		err = d
	}()
	return fn()
}

// viewTx runs fn in a read transaction of db, through guard.
func viewTx(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return viewTxAt(db, nil, fn)
}

// viewTxAt is viewTx for a walk over records: where (if not nil) names the
// last key handled, to place the damage a panic reveals (see guard).
func viewTxAt(db *bolt.DB, where func() string, fn func(*bolt.Tx) error) error {
	return guard(func() error { return db.View(fn) }, where)
}

// updateTx runs fn in a write transaction of db, through guard: a panic
// rolls the transaction back (bbolt's Update does so as it unwinds) and is
// returned as a *DamagedError. Every write of the store goes through here,
// the writer's commits included.
func updateTx(db *bolt.DB, fn func(*bolt.Tx) error) error {
	return guard(func() error { return db.Update(fn) }, nil)
}

// view runs a read transaction of the store through guard; a damaged store
// error names the store's file.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return s.named(viewTx(s.db, fn))
}

// update runs a write transaction of the store through guard, after the
// queued writes are committed. A failure to write is a *WriteError; a
// damaged store, a *DamagedError; fn's own refusals (a shard or product mismatch) are
// returned as they are.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	if err := s.Flush(); err != nil {
		return err
	}
	err := updateTx(s.db, fn)
	var we *WriteError
	var d *DamagedError
	switch {
	case err == nil, errors.As(err, &we), errors.Is(err, ErrShardMismatch), errors.Is(err, ErrProductMismatch):
		return err
	case errors.As(err, &d):
		return s.named(err)
	}
	return &WriteError{Path: s.path, Err: err}
}

// named prefixes a damaged-store error with the store's path (other errors
// are left to the caller, which adds it with what it was doing).
func (s *Store) named(err error) error {
	var d *DamagedError
	if errors.As(err, &d) {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return err
}
