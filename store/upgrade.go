package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// keyRecords in the meta bucket names the encoding of every user record
// once a run has upgraded the store (see upgrade); stores of the first
// versions have JSON records and no such key.
var keyRecords = []byte("records")

// recordsBinary is keyRecords' value: every record is in codec.go's form.
const recordsBinary = "binary-1"

// upgradeBatch is how many records one transaction of upgrade rewrites.
const upgradeBatch = 20_000

// upgrade rewrites, in place and under the run's lock, the JSON records of
// a store written by an earlier version in the binary form with its
// checksum, and drops the "seen" bucket those versions kept. Their content
// is unchanged: nothing is re-sent. A store already upgraded (every store
// this version creates, after its first run) costs one read. BeginRun calls
// it, after every check of the run.
func (s *Store) upgrade() error {
	if s.w == nil {
		return nil
	}
	if err := s.Flush(); err != nil {
		return err
	}
	var done bool
	if err := s.view(func(tx *bolt.Tx) error {
		done = string(tx.Bucket(bucketMeta).Get(keyRecords)) == recordsBinary
		return nil
	}); err != nil || done {
		return err
	}
	var from []byte
	for {
		var last []byte
		err := s.update(func(tx *bolt.Tx) error {
			users := tx.Bucket(bucketUsers)
			var keys, vals [][]byte
			c := users.Cursor()
			k, v := c.First()
			if from != nil {
				if k, v = c.Seek(from); k != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(keys) < upgradeBatch; k, v = c.Next() {
				last = append(last[:0], k...)
				if len(v) == 0 || v[0] != '{' {
					continue
				}
				rec, err := decodeRecord(k, v)
				if err != nil {
					return err
				}
				nv, err := encodeRecord(string(k), &rec)
				if err != nil {
					return fmt.Errorf("encoding record %q: %w", k, err)
				}
				keys, vals = append(keys, append([]byte(nil), k...)), append(vals, nv)
			}
			for i := range keys {
				if err := users.Put(keys[i], vals[i]); err != nil {
					return err
				}
			}
			if k != nil {
				return nil
			}
			last = nil // every record is done
			if tx.Bucket(bucketSeen) != nil {
				if err := tx.DeleteBucket(bucketSeen); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keyRecords, []byte(recordsBinary))
		})
		if err != nil {
			return fmt.Errorf("store %s: upgrading its records: %w", s.path, err)
		}
		if last == nil {
			return nil
		}
		from = append([]byte(nil), last...)
	}
}
