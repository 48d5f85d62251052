package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Get returns the record for key (a user_id or a RowKey), seeing writes that
// are queued but not yet committed. A record whose checksum does not match
// is a *DamagedError naming key.
func (s *Store) Get(key string) (rec Record, found bool, err error) {
	return s.get(key, decodeRecord)
}

// Probe is Get for a run's plan of a row: an enrolled record (which the run
// skips) comes back with its state, line, attempts, run and user_id only,
// its checksum verified; any other record in full.
func (s *Store) Probe(key string) (rec Record, found bool, err error) {
	return s.get(key, decodeUnlessEnrolled)
}

// get is Get with the given decoder.
func (s *Store) get(key string, decode func(k, v []byte) (Record, error)) (rec Record, found bool, err error) {
	if s.w != nil {
		if o, ok := s.w.pending(bucketUsers, key); ok {
			return o.rec, !o.del, nil
		}
	}
	k := []byte(key)
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsers).Get(k)
		if v == nil {
			return nil
		}
		found = true
		rec, err = decode(k, v)
		return err
	})
	// A re-run reads every record and writes nothing: release the pages
	// read now and then, as the writer does after its commits.
	if s.reads.Add(1)%releaseEvery == 0 {
		releaseMapped(s.db)
	}
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return Record{}, false, err
		}
		return Record{}, false, fmt.Errorf("store %s: reading %q: %w", s.path, key, err)
	}
	return rec, found, nil
}

// Put queues rec for the next batch under key and returns at once. Get sees
// it immediately; Flush or Close makes it durable. A failed commit is
// reported by Err, Flush and Close. Put on a read-only store is a
// programming error and panics.
func (s *Store) Put(key string, rec Record) {
	if s.w == nil {
		panic("store: Put on a read-only store")
	}
	s.w.put(key, rec, nil)
}

// PutThen queues rec under key like Put, and calls then once the batch
// that holds it is committed (nil: rec, or a newer record of key, is on
// disk) or has failed (a *WriteError: it is not, and will not be, since the
// store takes no more writes after a failed commit). then runs on the
// store's writer goroutine, after the commit and before Flush returns: it
// must be quick and must not call the store.
func (s *Store) PutThen(key string, rec Record, then func(error)) {
	if s.w == nil {
		panic("store: PutThen on a read-only store")
	}
	s.w.putThen(key, rec, false, then)
}

// PutAnswer is PutThen for a record that holds an answer from Smile ID
// (an enrollment, or a refusal with its code): the commit that saves it also
// binds a store not bound yet (see BindOnAnswer).
func (s *Store) PutAnswer(key string, rec Record, then func(error)) {
	if s.w == nil {
		panic("store: PutAnswer on a read-only store")
	}
	s.w.putThen(key, rec, true, then)
}

// Delete queues the removal of key's record, like Put.
func (s *Store) Delete(key string) {
	if s.w == nil {
		panic("store: Delete on a read-only store")
	}
	s.w.del(key)
}

// PutBatch queues every record like Put (Get sees them at once) and returns
// a channel that receives one value once all of them are committed to disk:
// nil, or the commit error. The caller can go on working while the batch
// commits, grouped with whatever else is queued by then.
func (s *Store) PutBatch(keys []string, recs []Record) <-chan error {
	done := make(chan error, 1)
	if s.w == nil {
		done <- fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
		return done
	}
	if len(recs) == 0 {
		done <- nil
		return done
	}
	for i := range recs {
		var d chan error
		if i == len(recs)-1 {
			d = done
		}
		s.w.put(keys[i], recs[i], d)
	}
	return done
}

// ClearRowRecords deletes the records of rows without a user key (see
// RowKey); a run calls it first so that they describe that run only.
//
// It writes only when there are such records.
func (s *Store) ClearRowRecords() error {
	if err := s.Flush(); err != nil {
		return err
	}
	prefix := []byte(RowKeyPrefix)
	var any bool
	if err := s.view(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketUsers).Cursor().Seek(prefix)
		any = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	}); err != nil || !any {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsers).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Each calls fn for every record in key order; state "" means all states.
func (s *Store) Each(state State, fn func(Record) error) error {
	if s.w != nil {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			rec, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if state != "" && rec.State != state {
				return nil
			}
			return fn(rec)
		})
	})
}

// Counts returns how many records are in each state.
func (s *Store) Counts() (map[State]int, error) {
	counts := make(map[State]int, len(States))
	for _, st := range States {
		counts[st] = 0
	}
	if s.w != nil {
		if err := s.Flush(); err != nil {
			return nil, err
		}
	}
	// Each record's checksum is verified, but only its state is decoded.
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			st, err := recordState(k, v)
			if err != nil {
				return err
			}
			counts[st]++
			return nil
		})
	})
	return counts, err
}
