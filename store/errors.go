package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors the store returns; callers match them with errors.Is.
var (
	// ErrLocked: another process holds the store.
	ErrLocked = errors.New("store is in use by another bulkenroll process")
	// ErrNotStore: the file is not a bulkenroll store, or is damaged.
	ErrNotStore = errors.New("not a bulkenroll store, or a damaged one")
	// ErrMismatch: the store was made for another partner ID or base URL.
	ErrMismatch = errors.New("store belongs to another partner or endpoint")
	// ErrReadOnly: a write to a store opened read-only.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrNotFound: the store file does not exist (read-only opens only).
	ErrNotFound = errors.New("store not found")
	// ErrShardMismatch: the store holds another shard of the manifest (or
	// none, or it is a shard's store and the run is not sharded).
	ErrShardMismatch = errors.New("store belongs to another shard")
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
	// Bucket names the bucket the damaged value is in, when it is not the
	// user records' ("": the users bucket, or unknown).
	Bucket string
}

func (e *DamagedError) Error() string {
	msg := "store is damaged"
	if e.Bucket != "" {
		msg += fmt.Sprintf(": in its %q bucket", e.Bucket)
	}
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

// WriteError is a commit the store could not make (no space left, a file
// size limit, an I/O error): the writes queued since are not saved either.
type WriteError struct {
	// Path is the store's file.
	Path string
	// Err is the failure, as bbolt or the system reported it.
	Err error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("store %s could not be written: %v", e.Path, e.Err)
}

// Unwrap returns the failure.
func (e *WriteError) Unwrap() error { return e.Err }
