package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged: the store file opened but part of it cannot be read back as
// it was written (a page bbolt cannot walk, a record whose checksum does
// not match). It wraps ErrNotStore, so code that matches ErrNotStore sees a
// damaged store too. A *DamagedError says where.
var ErrDamaged = fmt.Errorf("%w: damaged", ErrNotStore)

// DamagedError says where a store is damaged: the record's key when it is
// known, else the page, else what bbolt said. errors.Is(err, ErrDamaged)
// and errors.Is(err, ErrNotStore) hold for it.
type DamagedError struct {
	// Key is the key of the damaged record (a user_id, or a RowKey), as
	// read from the file: a damaged key is shown as it is stored.
	Key string
	// After is the last key read intact before the damage ("" if none or
	// unknown), to place a damaged page whose keys cannot be read.
	After string
	// Page is the bbolt page found damaged, when known (0: unknown).
	Page uint64
	// Reason is what was wrong (a checksum mismatch, bbolt's panic text).
	Reason string
}

func (e *DamagedError) Error() string {
	msg := "store is damaged"
	switch {
	case e.Key != "":
		msg += fmt.Sprintf(": the record of user %s", quoteKey(e.Key))
	case e.After != "":
		msg += fmt.Sprintf(": the records after user %s", quoteKey(e.After))
	}
	if e.Page != 0 {
		msg += fmt.Sprintf(" (page %d)", e.Page)
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrDamaged) (and ErrNotStore) hold.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

// User is the user_id the damage is attached to: the damaged record's key,
// or the last intact key before it ("" if neither is known). A row key
// (see RowKey) is shown as the manifest line it stands for.
func (e *DamagedError) User() string {
	if e.Key != "" {
		return e.Key
	}
	return e.After
}

// quoteKey shows a key in a message: a user_id quoted, a row key as its line.
func quoteKey(k string) string {
	if rest, ok := strings.CutPrefix(k, RowKeyPrefix+"line:"); ok {
		if line, err := strconv.Atoi(rest); err == nil {
			return fmt.Sprintf("of manifest line %d", line)
		}
	}
	return fmt.Sprintf("%q", k)
}

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
	return guard(func() error { return db.View(fn) }, nil)
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
// damaged store, a *DamagedError; fn's own refusals (a shard mismatch) are
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
	case err == nil, errors.As(err, &we), errors.Is(err, ErrShardMismatch):
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
