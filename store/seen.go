package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The seen bucket maps each user_id the current run has read to the manifest
// line it read it at. Finding a second row for a user then costs a small
// write per row, instead of keeping every user ID in memory or rewriting
// every user's record on each run.

// SeenAt returns the manifest line at which the current run saw key, or 0.
// It sees MarkSeen calls not yet committed.
func (s *Store) SeenAt(key string) (int, error) {
	if s.w != nil {
		if o, ok := s.w.pending(bucketSeen, key); ok {
			return o.line, nil
		}
	}
	var line int
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSeen); b != nil {
			line = decodeLine(b.Get([]byte(key)))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store %s: reading %q: %w", s.path, key, err)
	}
	return line, nil
}

// MarkSeen records, asynchronously like Put, that the current run read key
// at manifest line.
func (s *Store) MarkSeen(key string, line int) {
	if s.w == nil {
		panic("store: MarkSeen on a read-only store")
	}
	s.w.putSeen(key, line)
}

// ResetSeen forgets every user the previous runs saw; a run calls it first.
func (s *Store) ResetSeen() error {
	if err := s.Flush(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSeen) != nil {
			if err := tx.DeleteBucket(bucketSeen); err != nil {
				return err
			}
		}
		_, err := tx.CreateBucket(bucketSeen)
		return err
	})
	if err != nil {
		return fmt.Errorf("store %s: resetting the run's user list: %w", s.path, err)
	}
	releaseMapped(s.db) // freeing the old list read all its pages
	return nil
}

func encodeLine(line int) []byte {
	return binary.AppendUvarint(nil, uint64(line))
}

func decodeLine(v []byte) int {
	n, size := binary.Uvarint(v)
	if size <= 0 {
		return 0
	}
	return int(n)
}
