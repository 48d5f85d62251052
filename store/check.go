package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Check opens the existing store at path read-only, checks it as Open does
// (see verify) and closes it, writing nothing: a command that must not
// write to a damaged store can call it before opening the store for
// writing. Open itself checks every existing store before its first write,
// so a caller that opens the store at once needs no separate Check.
func Check(path string) error { return check(path, 0) }

// check is Check waiting up to lockTimeout (0: Open's default) for a lock.
func check(path string, lockTimeout time.Duration) error {
	s, err := Open(path, Options{ReadOnly: true, LockTimeout: lockTimeout})
	if err != nil {
		return err
	}
	return s.Close()
}

// verify checks a store that exists before anything is written to it:
// every user record is read and its checksum verified (naming the first
// damaged user), then bbolt's own consistency check walks every page (the
// free list, page types, key order, pages reachable or freed). It runs in
// read transactions while nothing writes. The damaged-store error says how
// to go on.
func (s *Store) verify() error {
	err := s.walkRecords()
	if err == nil {
		err = viewTx(s.db, func(tx *bolt.Tx) error {
			var msgs []string
			// bbolt's check reads every page: release them as it goes, so
			// a run's resident set does not grow with the store.
			tick := time.NewTicker(releaseCheckEvery)
			defer tick.Stop()
			errs := tx.Check(bolt.WithKVStringer(quotedKV{}))
			for done := false; !done; {
				select {
				case e, ok := <-errs:
					if !ok {
						done = true
						break
					}
					msgs = append(msgs, e.Error())
				case <-tick.C:
					releaseTx(tx)
				}
			}
			releaseTx(tx)
			if len(msgs) == 0 {
				return nil
			}
			if len(msgs) > 3 {
				msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
			}
			return &DamagedError{Reason: "bbolt's check found: " + strings.Join(msgs, "; ")}
		})
	}
	if err != nil {
		return fmt.Errorf("%w\n  %s", err, damageAdvice(s.path))
	}
	return nil
}

// walkRecords reads every value of the registered buckets that have a
// check (the user records), verifying it. The first fault is a
// *DamagedError naming the key, or for a page bbolt cannot read, the last
// key read before it.
func (s *Store) walkRecords() error {
	for _, b := range buckets {
		if b.check == nil {
			continue
		}
		if err := s.walkBucket(b); err != nil {
			return err
		}
	}
	return nil
}

// walkBucket is walkRecords for one bucket; a missing bucket is left to
// checkFormat (a required one) or holds nothing yet (an optional one).
func (s *Store) walkBucket(b bucketSpec) error {
	var last []byte
	where := func() string { return string(last) }
	err := viewTxAt(s.db, where, func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.name)
		if bk == nil {
			return nil
		}
		c := bk.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				return &DamagedError{Key: string(k), Reason: "a nested bucket where a record should be"}
			}
			if err := b.check(k, v); err != nil {
				return err
			}
			last = k
			if n++; n%releaseWalkEvery == 0 {
				releaseTx(tx) // as the check below does
			}
		}
		return nil
	})
	var d *DamagedError
	if errors.As(err, &d) && string(b.name) != string(bucketUsers) {
		d.Bucket = string(b.name)
	}
	return err
}

// How often the check releases the pages it has read (see releaseTx).
const (
	releaseWalkEvery  = 16384 // records
	releaseCheckEvery = 20 * time.Millisecond
)

// quotedKV shows keys and values in bbolt's check messages as quoted strings
// (user_ids are text).
type quotedKV struct{}

func (quotedKV) KeyToString(k []byte) string   { return fmt.Sprintf("%q", k) }
func (quotedKV) ValueToString(v []byte) string { return fmt.Sprintf("%d bytes", len(v)) }

// damageAdvice is what a person can do with a damaged store at path.
func damageAdvice(path string) string {
	return fmt.Sprintf("nothing was written to it and nothing was sent; copy it away (cp %s %s.damaged) and keep the copy; "+
		"`bulkenroll report --salvage --store %s` lists every record still readable", path, path, path)
}
