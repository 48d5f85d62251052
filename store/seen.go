package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The seen bucket maps each user_id to the run that last read it and the
// manifest line it was read at. Finding a second row for a user in one run
// then costs a small write per row, instead of keeping every user ID in
// memory or rewriting every user's record on each run; and as each entry
// names its run, nothing needs clearing between runs.

// SeenAt returns the run that last read key and the manifest line it read it
// at (0, 0 if none). It sees MarkSeen calls not yet committed.
func (s *Store) SeenAt(key string) (run uint64, line int, err error) {
	if s.w != nil {
		if o, ok := s.w.pending(bucketSeen, key); ok {
			return o.run, o.line, nil
		}
	}
	err = s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSeen); b != nil {
			run, line = decodeSeen(b.Get([]byte(key)))
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store %s: reading %q: %w", s.path, key, err)
	}
	return run, line, nil
}

// MarkSeen records, asynchronously like Put, that run read key at manifest
// line.
func (s *Store) MarkSeen(key string, run uint64, line int) {
	if s.w == nil {
		panic("store: MarkSeen on a read-only store")
	}
	s.w.putSeen(key, run, line)
}

func encodeSeen(run uint64, line int) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 12), run)
	return binary.AppendUvarint(b, uint64(line))
}

func decodeSeen(v []byte) (uint64, int) {
	run, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, 0
	}
	line, m := binary.Uvarint(v[n:])
	if m <= 0 {
		return 0, 0
	}
	return run, int(line)
}
