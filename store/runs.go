package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Run is one import run's history entry.
type Run struct {
	// ID numbers runs from 1 in the order they started.
	ID uint64 `json:"id"`
	// Manifest is the manifest path the run read ("-" for standard input).
	Manifest string `json:"manifest"`
	// Started and Ended bound the run; Ended is zero while it runs (or if it crashed).
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitempty"`
	// Outcome is "running", "finished", "interrupted", "stopped" (account-level
	// refusal) or "crashed"-equivalent: a "running" entry whose process is gone.
	Outcome string `json:"outcome"`
	// Counts are the run's summary counts by name (rows, enrolled, skipped, ...).
	Counts map[string]int `json:"counts,omitempty"`
	// DryRun marks a run that sent nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// BeginRun records the start of a run and returns it with its new ID.
func (s *Store) BeginRun(manifest string, started time.Time) (Run, error) {
	if err := s.upgrade(); err != nil { // records of an earlier version (upgrade.go)
		return Run{}, err
	}
	if err := s.ensureBuckets(); err != nil { // buckets added since the store was made
		return Run{}, err
	}
	run := Run{Manifest: manifest, Started: started.UTC(), Outcome: "running"}
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		run.ID = id
		return putRun(b, &run)
	})
	if err != nil {
		return Run{}, fmt.Errorf("store %s: recording the run: %w", s.path, err)
	}
	return run, nil
}

// EndRun flushes queued writes and records how the run ended. A failed
// commit of queued writes (see Err) does not keep it from trying: the run's
// end is worth recording even when some of its rows could not be; its
// error says only whether the end itself was recorded.
func (s *Store) EndRun(run Run) error {
	if s.w == nil {
		return fmt.Errorf("store %s: %w", s.path, ErrReadOnly)
	}
	_ = s.Flush() // Err reports a failed commit
	err := s.update(func(tx *bolt.Tx) error {
		return putRun(tx.Bucket(bucketRuns), &run)
	})
	if err != nil {
		return fmt.Errorf("store %s: recording the end of run %d: %w", s.path, run.ID, err)
	}
	return nil
}

// LastRun returns the most recent run, if any.
func (s *Store) LastRun() (Run, bool, error) {
	var run Run
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		_, v := tx.Bucket(bucketRuns).Cursor().Last()
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &run)
	})
	return run, found, err
}

func putRun(b *bolt.Bucket, run *Run) error {
	v, err := json.Marshal(run)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], run.ID)
	return b.Put(k[:], v)
}
