package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The store's top-level buckets, registered in one place. To add a bucket
// (verify's results, say):
//
//  1. Name it (below, or in its own file) and add a bucketSpec to
//     buckets, with required false: stores made before the bucket
//     existed lack it.
//  2. That is all the creation needs: create makes every registered bucket
//     in a new store, and BeginRun (ensureBuckets) adds the missing ones to
//     an older store with its first write. A command that can write to a
//     store before any run of this version has (verify) calls
//     s.ensureBuckets() before its first write, or creates its bucket with
//     tx.CreateBucketIfNotExists as it writes. Opening a store still
//     writes nothing; a reader treats a missing optional bucket as empty.
//  3. Give it a check if its values have a form that can be verified (a
//     checksum): the full check an existing store gets before its first
//     write (check.go) walks every registered bucket that has one, and a
//     failure names the bucket and the key.
//  4. Salvage lists user records only; a bucket whose values a damaged
//     store's owner needs back adds its own reader there.
//
// Write a bucket's values through Store.update (tx.go), which runs after the
// writer's queued records are committed; the writer itself writes user
// records only.
var (
	bucketMeta  = []byte("meta")
	bucketUsers = []byte("users")
	bucketRuns  = []byte("runs")
	// bucketSeen held, in the stores of earlier versions, a "seen" mark per
	// user read by a run; duplicates are now found in memory and upgrade
	// (upgrade.go) drops the bucket. It is not registered.
	bucketSeen = []byte("seen")

	// Keys of the meta bucket (product.go and upgrade.go name theirs).
	keyFormat    = []byte("format")
	keyPartnerID = []byte("partner_id")
	keyBaseURL   = []byte("base_url")
	keyCreated   = []byte("created_at")
	keyShard     = []byte("shard")
	keyLearned   = []byte("learned_rate")
)

// bucketSpec describes one registered top-level bucket.
type bucketSpec struct {
	name []byte
	// required: every store has had it since the first version; a file
	// without it is not a store (checkFormat).
	required bool
	// check verifies one value stored under key, returning a
	// *DamagedError (nil check: bbolt's own check only).
	check func(key, value []byte) error
}

// buckets lists every top-level bucket of a store.
var buckets = []bucketSpec{
	{name: bucketMeta, required: true},
	{name: bucketUsers, required: true, check: checkRecord},
	{name: bucketRuns, required: true},
}

// createBuckets makes every registered bucket tx lacks.
func createBuckets(tx *bolt.Tx) error {
	for _, b := range buckets {
		if _, err := tx.CreateBucketIfNotExists(b.name); err != nil {
			return fmt.Errorf("creating bucket %q: %w", b.name, err)
		}
	}
	return nil
}

// checkBuckets returns an error wrapping ErrNotStore when tx lacks a
// required bucket.
func checkBuckets(tx *bolt.Tx) error {
	for _, b := range buckets {
		if b.required && tx.Bucket(b.name) == nil {
			return fmt.Errorf("%w: missing buckets", ErrNotStore)
		}
	}
	return nil
}

// ensureBuckets adds to the store the registered buckets it lacks (a store
// made before they existed). It writes only when one is missing.
func (s *Store) ensureBuckets() error {
	var missing bool
	if err := s.view(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			missing = missing || tx.Bucket(b.name) == nil
		}
		return nil
	}); err != nil || !missing {
		return err
	}
	if err := s.update(createBuckets); err != nil {
		return fmt.Errorf("store %s: adding buckets: %w", s.path, err)
	}
	return nil
}
