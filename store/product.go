package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Product names the enrollment product whose records a store holds: a
// store holds one product for good, since its records (their answers, job
// IDs and generations) mean what that product's answers mean.
type Product string

// The products a store can hold.
const (
	// Backfill is job type 4, POST /v1/backfill_users: the default, and
	// the product of every store made before products were recorded.
	Backfill Product = "backfill"
	// Compare is SmartSelfie Compare, POST /v2/smart-selfie-compare.
	Compare Product = "compare"
)

// Products lists every product, the default first.
var Products = []Product{Backfill, Compare}

// ParseProduct returns the Product named s.
func ParseProduct(s string) (Product, error) {
	for _, p := range Products {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown product %q (want backfill or compare)", s)
}

// ErrProductMismatch: the store holds another product's records. The error
// is a *ProductMismatchError.
var ErrProductMismatch = errors.New("store belongs to another product")

// ProductMismatchError is a run of one product refused by a store of
// another. errors.Is(err, ErrProductMismatch) holds for it.
type ProductMismatchError struct {
	// Path is the store's file.
	Path string
	// Have is the product the store holds; Want the run's.
	Have, Want Product
}

func (e *ProductMismatchError) Error() string {
	return fmt.Sprintf("store %s: %v: it holds %s records, and a store holds one product; "+
		"use another --store for --product %s (or --product %s with this one)",
		e.Path, ErrProductMismatch, e.Have, e.Want, e.Have)
}

// Unwrap makes errors.Is(err, ErrProductMismatch) hold.
func (e *ProductMismatchError) Unwrap() error { return ErrProductMismatch }

var (
	// keyProduct in the meta bucket is the product the store holds (see
	// BindProduct); a store without it holds backfill records once it has
	// any run or record.
	keyProduct = []byte("product")
	// keyStoreID is a random identity of the store, written when it is
	// created (or, for a store made before, when it is bound to a product
	// that needs it): job IDs derive from it (see JobID).
	keyStoreID = []byte("store_id")
)

// newStoreID returns a new random store identity.
func newStoreID() ([]byte, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("making the store's identity: %w", err)
	}
	return []byte(hex.EncodeToString(b[:])), nil
}

// storeProduct returns the product the store in tx holds: the recorded
// one, Backfill for a store with runs or records but none recorded (made
// before products were recorded), or "" for a store no run has used yet.
func storeProduct(tx *bolt.Tx) Product {
	if p := tx.Bucket(bucketMeta).Get(keyProduct); p != nil {
		return Product(p)
	}
	if k, _ := tx.Bucket(bucketRuns).Cursor().First(); k != nil {
		return Backfill
	}
	if k, _ := tx.Bucket(bucketUsers).Cursor().First(); k != nil {
		return Backfill
	}
	return ""
}

// Product returns the product the store holds: the one its first run
// recorded, Backfill for a store of an earlier version that has runs or
// records, or "" for a store no run has used yet (either product may take
// it).
func (s *Store) Product() (Product, error) {
	var p Product
	err := s.view(func(tx *bolt.Tx) error {
		p = storeProduct(tx)
		return nil
	})
	return p, err
}

// productToRecord checks want against the store's product and returns
// whether it is to be recorded (the store's first run).
func (s *Store) productToRecord(tx *bolt.Tx, want Product) (bool, error) {
	if _, err := ParseProduct(string(want)); err != nil {
		return false, fmt.Errorf("store %s: %w", s.path, err)
	}
	switch have := storeProduct(tx); have {
	case "":
		return true, nil
	case want:
		return false, nil
	default:
		return false, &ProductMismatchError{Path: s.path, Have: have, Want: want}
	}
}

// CheckProduct returns a *ProductMismatchError when the store holds
// another product than p (a store no run has used yet passes). It writes
// nothing: a run checks it with its other checks, a dry run too.
func (s *Store) CheckProduct(p Product) error {
	return s.view(func(tx *bolt.Tx) error {
		_, err := s.productToRecord(tx, p)
		return err
	})
}

// BindProduct records p as the product of a store no run has used yet, or
// checks it against the store's (a *ProductMismatchError), like BindShard:
// a run calls it before BeginRun, after its checks. It writes only when
// the product is to be recorded (with the store's identity, if a store of
// an earlier version lacks one).
func (s *Store) BindProduct(p Product) error {
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	var record bool
	if err := s.view(func(tx *bolt.Tx) (err error) {
		record, err = s.productToRecord(tx, p)
		return err
	}); err != nil || !record {
		return err
	}
	id, err := newStoreID()
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		if ok, err := s.productToRecord(tx, p); err != nil || !ok {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyStoreID) == nil {
			if err := meta.Put(keyStoreID, id); err != nil {
				return err
			}
		}
		return meta.Put(keyProduct, []byte(p))
	})
	var pm *ProductMismatchError
	if err != nil && !errors.As(err, &pm) {
		return fmt.Errorf("store %s: recording its product: %w", s.path, err)
	}
	return err
}

// JobID returns the job_id of a request for userID at generation (see
// Record.Generation): the same store, user and generation always give the
// same job_id, and another store, user or generation another one. It is
// what a product whose job IDs the tool chooses (compare) sends in
// partner_params, recorded with MarkJob before the request goes out. A
// store made before store identities existed has none until BindProduct
// records its product; JobID then fails.
func (s *Store) JobID(userID string, generation uint64) (string, error) {
	id, _ := s.id.Load().([]byte)
	if id == nil {
		if err := s.view(func(tx *bolt.Tx) error {
			id = append(id, tx.Bucket(bucketMeta).Get(keyStoreID)...)
			return nil
		}); err != nil {
			return "", err
		}
		if len(id) > 0 {
			s.id.Store(id) // it never changes once written
		}
	}
	if len(id) == 0 {
		return "", fmt.Errorf("store %s: it has no identity yet to derive job IDs from (a store of an earlier version: a run records one)", s.path)
	}
	return jobID(id, userID, generation), nil
}

// jobID derives a job_id from a store identity, a user and a generation:
// "bulkenroll-" and 32 hex digits of a SHA-256 of the three (the user's ID
// is not shown in it).
func jobID(storeID []byte, userID string, generation uint64) string {
	h := sha256.New()
	h.Write(storeID)
	h.Write([]byte{0})
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write(strconv.AppendUint(nil, generation, 10))
	return "bulkenroll-" + hex.EncodeToString(h.Sum(nil)[:16])
}
