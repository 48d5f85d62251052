package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Helpers the store's tests share that production code does not need.

// putDurable stores every record and returns once they are committed to
// disk (PutBatch, waited for).
func (s *Store) putDurable(keys []string, recs []Record) error {
	return <-s.PutBatch(keys, recs)
}

// removeLive deletes the live snapshot of the store at storePath; a
// missing one is not an error.
func removeLive(storePath string) error {
	if err := os.Remove(LivePath(storePath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("live status: %w", err)
	}
	return nil
}

// isDamaged reports whether err says a store is damaged (a *DamagedError).
func isDamaged(err error) bool {
	var d *DamagedError
	return errors.As(err, &d)
}
