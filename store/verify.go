package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Verification results (bulkenroll verify) are kept apart from enrollment
// states, in buckets of their own: a verify run never changes a user's
// record. Every write here is durable when it returns (a job is billed:
// what was sent must be known after a crash).
var (
	bucketVerifyRuns = []byte("verify_runs")
	bucketVerifyJobs = []byte("verify_jobs")
)

// The verify buckets join the registry (buckets.go): optional, since
// stores made before verify lack them, and checked value by value.
func init() {
	buckets = append(buckets,
		bucketSpec{name: bucketVerifyRuns, check: checkJSON},
		bucketSpec{name: bucketVerifyJobs, check: checkJSON})
}

// checkJSON verifies that a verify bucket's value is the JSON it was written as.
func checkJSON(key, value []byte) error {
	if !json.Valid(value) {
		return &DamagedError{Key: string(key), Reason: "a verification record is not valid JSON"}
	}
	return nil
}

// VerifyRun is one verify run's history entry.
type VerifyRun struct {
	// ID numbers verify runs from 1.
	ID uint64 `json:"id"`
	// Nonce is random, drawn when the run began: with ID it makes the
	// run's job IDs unique to this store.
	Nonce string `json:"nonce"`
	// Started and Ended bound the run; Ended is zero while it is unfinished.
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitempty"`
	// Outcome is "running", "finished", "interrupted", "stopped" or "failed".
	Outcome string `json:"outcome"`
	// Selection says how the users were picked (e.g. "sample 20 seed 7").
	Selection string `json:"selection,omitempty"`
	// Counts are the run's summary counts by name.
	Counts map[string]int `json:"counts,omitempty"`
}

// Unfinished reports whether the run did not reach its end (interrupted,
// stopped, crashed): a later verify continues it.
func (r VerifyRun) Unfinished() bool { return r.Outcome != "finished" }

// Steps of a verification job.
const (
	// JobSelected: the user was picked; its job ID is recorded and nothing
	// was sent yet, or a prepare request was sent without an answer.
	JobSelected = "selected"
	// JobPrepared: Smile ID created the job and gave an upload URL.
	JobPrepared = "prepared"
	// JobUploaded: the zip was PUT; the result is to be polled.
	JobUploaded = "uploaded"
	// JobDone: the job has a final outcome (or a pending review to poll
	// again).
	JobDone = "done"
)

// VerifyJob is one SmartSelfie Authentication job of a verify run.
type VerifyJob struct {
	RunID  uint64 `json:"run"`
	UserID string `json:"user_id"`
	// JobID is the partner job ID, derived from the run and the user.
	JobID string `json:"job_id"`
	// Step is JobSelected, JobPrepared, JobUploaded or JobDone.
	Step string `json:"step"`
	// PrepareSent is set once a prepare request went out: a 2215 for the
	// job ID then means it was prepared before.
	PrepareSent bool `json:"prepare_sent,omitempty"`
	// UploadURL, SmileJobID and Server come from the prepare answer
	// (Server is the answer as received).
	UploadURL  string          `json:"upload_url,omitempty"`
	SmileJobID string          `json:"smile_job_id,omitempty"`
	Server     json.RawMessage `json:"server,omitempty"`
	// ResultCode, ResultText, Compare (the selfie-to-registered-selfie
	// action) and Confidence come from the job's result.
	ResultCode string `json:"result_code,omitempty"`
	ResultText string `json:"result_text,omitempty"`
	Compare    string `json:"compare,omitempty"`
	Confidence string `json:"confidence,omitempty"`
	// Outcome is "authenticated", "not authenticated", "pending review"
	// or "error" once the job has one.
	Outcome string `json:"outcome,omitempty"`
	// Reason explains the outcome (an error's text, a refusal's).
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// verifyJobKey is a job's key: the run, big-endian, then the user_id.
func verifyJobKey(run uint64, user string) []byte {
	k := make([]byte, 8, 8+len(user))
	binary.BigEndian.PutUint64(k, run)
	return append(k, user...)
}

// BeginVerifyRun records the start of a verify run and returns it with its
// new ID and nonce.
func (s *Store) BeginVerifyRun(selection string, started time.Time) (VerifyRun, error) {
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return VerifyRun{}, fmt.Errorf("drawing a verify run's nonce: %w", err)
	}
	run := VerifyRun{Nonce: hex.EncodeToString(nonce[:]), Started: started.UTC(), Outcome: "running", Selection: selection}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketVerifyRuns)
		if err != nil {
			return err
		}
		if run.ID, err = b.NextSequence(); err != nil {
			return err
		}
		return putVerifyRun(b, &run)
	})
	if err != nil {
		return VerifyRun{}, fmt.Errorf("store %s: recording the verify run: %w", s.path, err)
	}
	return run, nil
}

// EndVerifyRun records how a verify run ended (or where it stands).
func (s *Store) EndVerifyRun(run VerifyRun) error {
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketVerifyRuns)
		if err != nil {
			return err
		}
		return putVerifyRun(b, &run)
	})
	if err != nil {
		return fmt.Errorf("store %s: recording the end of verify run %d: %w", s.path, run.ID, err)
	}
	return nil
}

func putVerifyRun(b *bolt.Bucket, run *VerifyRun) error {
	v, err := json.Marshal(run)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], run.ID)
	return b.Put(k[:], v)
}

// LastVerifyRun returns the most recent verify run, if any.
func (s *Store) LastVerifyRun() (VerifyRun, bool, error) {
	var run VerifyRun
	var found bool
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerifyRuns)
		if b == nil {
			return nil
		}
		_, v := b.Cursor().Last()
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &run)
	})
	return run, found, err
}

// PutVerifyJobs saves jobs durably, in one commit.
func (s *Store) PutVerifyJobs(jobs []VerifyJob) error {
	if len(jobs) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketVerifyJobs)
		if err != nil {
			return err
		}
		for i := range jobs {
			j := &jobs[i]
			if j.RunID == 0 || j.UserID == "" || j.JobID == "" {
				return errors.New("a verification job needs its run, user_id and job_id")
			}
			v, err := json.Marshal(j)
			if err != nil {
				return err
			}
			if err := b.Put(verifyJobKey(j.RunID, j.UserID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: saving verification jobs: %w", s.path, err)
	}
	return nil
}

// PutVerifyJob saves one job durably.
func (s *Store) PutVerifyJob(j VerifyJob) error { return s.PutVerifyJobs([]VerifyJob{j}) }

// EachVerifyJob calls fn for every job of run (0: of every run), in the
// order of runs, then user_ids.
func (s *Store) EachVerifyJob(run uint64, fn func(VerifyJob) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerifyJobs)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if run == 0 {
			k, v = c.First()
		} else {
			k, v = c.Seek(verifyJobKey(run, ""))
		}
		for ; k != nil; k, v = c.Next() {
			if len(k) < 8 {
				return &DamagedError{Key: string(k), Reason: "a verification job's key is too short"}
			}
			if run != 0 && binary.BigEndian.Uint64(k[:8]) != run {
				return nil
			}
			var j VerifyJob
			if err := json.Unmarshal(v, &j); err != nil {
				return &DamagedError{Key: string(k[8:]), Reason: "a verification job cannot be read: " + err.Error()}
			}
			if err := fn(j); err != nil {
				return err
			}
		}
		return nil
	})
}
