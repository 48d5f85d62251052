package store

import (
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Meta describes what the store was made for.
type Meta struct {
	PartnerID string
	BaseURL   string
	CreatedAt string
	// Shard is the manifest shard ("K/N") the store holds, or "" for a
	// store of the whole manifest (see BindShard).
	Shard string
	// LearnedRate is the request quota the last adaptive run learned for
	// the endpoint, per second (0: none).
	LearnedRate float64
	// Product is the product the store holds, "" before its first run
	// (see Store.Product).
	Product Product
}

// Meta returns the store's binding; empty fields when it is not bound yet.
func (s *Store) Meta() (Meta, error) {
	var m Meta
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		m.PartnerID = string(b.Get(keyPartnerID))
		m.BaseURL = string(b.Get(keyBaseURL))
		m.CreatedAt = string(b.Get(keyCreated))
		m.Shard = string(b.Get(keyShard))
		m.LearnedRate, _ = strconv.ParseFloat(string(b.Get(keyLearned)), 64)
		m.Product = storeProduct(tx)
		return nil
	})
	return m, err
}

// SetLearnedRate remembers the request quota a run learned for the store's
// endpoint (a store is bound to one), so the next run starts near it.
func (s *Store) SetLearnedRate(perSecond float64) error {
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyLearned, []byte(strconv.FormatFloat(perSecond, 'f', 2, 64)))
	})
	if err != nil {
		return fmt.Errorf("store %s: saving the learned rate: %w", s.path, err)
	}
	return nil
}

// CheckBinding returns ErrMismatch when the store is bound to another partner
// ID or base URL. An unbound store passes.
func (s *Store) CheckBinding(partnerID, baseURL string) error {
	m, err := s.Meta()
	if err != nil {
		return err
	}
	return s.checkBinding(m, partnerID, baseURL)
}

func (s *Store) checkBinding(m Meta, partnerID, baseURL string) error {
	if m.PartnerID == "" && m.BaseURL == "" {
		return nil
	}
	if m.PartnerID != partnerID || m.BaseURL != baseURL {
		return fmt.Errorf("store %s: %w: it was made for partner %q at %s, not partner %q at %s; use another --store",
			s.path, ErrMismatch, m.PartnerID, m.BaseURL, partnerID, baseURL)
	}
	return nil
}

// Bind records partnerID and baseURL in a new store at once, or checks them
// against an existing binding (ErrMismatch). A run binds its store by its
// first answer instead (BindOnAnswer).
func (s *Store) Bind(partnerID, baseURL string) error {
	if s.w == nil {
		if err := s.CheckBinding(partnerID, baseURL); err != nil {
			return err
		}
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	if err := s.BindOnAnswer(partnerID, baseURL); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := &binding{partnerID, baseURL}
		if !s.w.takeBinding(b) {
			return nil // bound already: nothing to write
		}
		return putBinding(tx, b)
	})
}

// BindOnAnswer checks partnerID and baseURL against the store's binding
// (ErrMismatch) and, when the store is not bound yet, has the first commit
// that saves an answer from Smile ID (PutAnswer) bind it, in the same
// transaction: a run that got no answer (a refused account, a wrong base
// URL) leaves the store unbound, and a corrected run may use it.
func (s *Store) BindOnAnswer(partnerID, baseURL string) error {
	m, err := s.Meta()
	if err != nil {
		return err
	}
	if err := s.checkBinding(m, partnerID, baseURL); err != nil {
		return err
	}
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	if m.PartnerID == "" && m.BaseURL == "" {
		s.w.mu.Lock()
		s.w.bind = &binding{partnerID, baseURL}
		s.w.mu.Unlock()
	}
	return nil
}

// binding is the partner ID and base URL a store is bound to.
type binding struct{ partnerID, baseURL string }

// takeBinding returns whether b is still to be recorded, and forgets it:
// the caller records it.
func (w *writer) takeBinding(b *binding) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bind == nil || *w.bind != *b {
		return false
	}
	w.bind = nil
	return true
}

// putBinding records b in tx.
func putBinding(tx *bolt.Tx, b *binding) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keyPartnerID, []byte(b.partnerID)); err != nil {
		return err
	}
	return meta.Put(keyBaseURL, []byte(b.baseURL))
}

// CheckShard returns an error wrapping ErrShardMismatch when a run of
// shard ("K/N", or "" for the whole manifest) may not use the store (see
// BindShard). It writes nothing.
func (s *Store) CheckShard(shard string) error {
	err := s.view(func(tx *bolt.Tx) error {
		_, err := shardToRecord(tx, shard)
		return err
	})
	if err != nil && errors.Is(err, ErrShardMismatch) {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return err
}

// shardToRecord checks shard against the store's and returns whether it is
// to be recorded (the store's first run).
func shardToRecord(tx *bolt.Tx, shard string) (bool, error) {
	have := string(tx.Bucket(bucketMeta).Get(keyShard))
	switch {
	case have == shard:
		return false, nil
	case have != "" && shard == "":
		return false, fmt.Errorf("%w: it holds shard %s of its manifest; pass --shard %s (or use another --store for an unsharded run)",
			ErrShardMismatch, have, have)
	case have != "":
		return false, fmt.Errorf("%w: it holds shard %s, not %s; each shard needs its own --store", ErrShardMismatch, have, shard)
	}
	// A store without a shard: it may take one only before its first run.
	if k, _ := tx.Bucket(bucketRuns).Cursor().First(); k != nil {
		return false, fmt.Errorf("%w: it already holds runs of the whole manifest, not of shard %s; use a new --store for each shard",
			ErrShardMismatch, shard)
	}
	if k, _ := tx.Bucket(bucketUsers).Cursor().First(); k != nil {
		return false, fmt.Errorf("%w: it already holds records of the whole manifest, not of shard %s; use a new --store for each shard",
			ErrShardMismatch, shard)
	}
	return true, nil
}

// BindShard records the manifest shard ("K/N", or "" for the whole
// manifest) a run imports, or checks it against the store's: a store holds
// one shard for good, since its records are that shard's users. The first
// run records the shard; a later run with another shard, with none on a
// shard's store, or with one on a store that already has runs of the whole
// manifest is refused with an error wrapping ErrShardMismatch. A run checks
// it (CheckShard) with its other checks and calls BindShard before
// BeginRun; it writes only when the shard is to be recorded.
func (s *Store) BindShard(shard string) error {
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	if err := s.CheckShard(shard); err != nil {
		return err
	}
	if shard == "" {
		return nil // the whole manifest: nothing to record
	}
	var record bool
	if err := s.view(func(tx *bolt.Tx) (err error) {
		record, err = shardToRecord(tx, shard)
		return err
	}); err != nil || !record {
		return err
	}
	err := s.update(func(tx *bolt.Tx) error {
		if ok, err := shardToRecord(tx, shard); err != nil || !ok {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyShard, []byte(shard))
	})
	if errors.Is(err, ErrShardMismatch) {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return err
}
