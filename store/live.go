package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LiveStaleAfter is how old a live snapshot may be and still describe a
// running import: a run replaces its snapshot every few seconds.
const LiveStaleAfter = 30 * time.Second

// LivePath is the file, next to the store at storePath, where a run
// publishes its live figures: storePath + ".live.json".
func LivePath(storePath string) string { return storePath + ".live.json" }

// Live is a running import's snapshot, which the run replaces every few
// seconds next to its store (see LivePath) so that `status` can show it while
// the run holds the store's lock. Counts are those of the run so far.
type Live struct {
	// PID and Host identify the run's process.
	PID  int    `json:"pid"`
	Host string `json:"host"`
	// RunID is the store's number for the run.
	RunID uint64 `json:"run_id"`
	// Manifest is the manifest path the run reads ("-" for standard input).
	Manifest string `json:"manifest"`
	// Shard is the manifest shard ("K/N") the run imports, "" for all rows.
	Shard string `json:"shard,omitempty"`
	// Started is when the run began; Updated when this snapshot was taken.
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Total is the manifest's row count, or -1 while unknown.
	Total int64 `json:"total"`
	// Rows counts the rows read; the others count rows by how they ended.
	Rows     int64 `json:"rows"`
	Enrolled int64 `json:"enrolled"`
	Skipped  int64 `json:"skipped"`
	Rejected int64 `json:"rejected"`
	Failed   int64 `json:"failed"`
	Pending  int64 `json:"pending"`
	// RowsPerSecond is the speed of settled rows (enrolled, rejected,
	// failed) since the start.
	RowsPerSecond float64 `json:"rows_per_second"`
	// Rate is the request rate limit in force (0: none); LearnedRate the
	// quota the adaptive rate has found (0: none yet).
	Rate        float64 `json:"rate"`
	LearnedRate float64 `json:"learned_rate"`
	// InFlight is the number of requests sent and not yet answered; Window
	// how many may be in flight at once.
	InFlight int64 `json:"in_flight"`
	Window   int   `json:"window"`
	// Limiter names what holds the run back ("quota", "max-rate", "rate",
	// "workers", "manifest", "photo source", "outage"), "" when nothing in
	// particular does.
	Limiter string `json:"limiter,omitempty"`
	// DownSince is when the service stopped answering, while an outage
	// holds the run (zero otherwise).
	DownSince time.Time `json:"down_since,omitzero"`
	// ETASeconds estimates the time left (0: cannot tell).
	ETASeconds float64 `json:"eta_seconds"`
	// LastSuccess is when the last enrollment was confirmed (zero: none yet).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Done is set in the last snapshot of a run that ended.
	Done bool `json:"done"`
	// Unsaved counts the rows whose result the store could not save (a
	// full disk): they count as pending.
	Unsaved int64 `json:"unsaved,omitempty"`
	// EndNotRecorded, in the last snapshot, says why the store could not
	// record the run's end: status then tells the run ended, not that it
	// was killed.
	EndNotRecorded string `json:"end_not_recorded,omitempty"`
}

// liveSize is the size every snapshot is padded to (with spaces, which
// JSON ignores), so that the last one can overwrite the file in place when
// the disk is too full for a new file (see WriteLive).
const liveSize = 2048

// WriteLive replaces the live snapshot of the store at storePath atomically:
// it writes a temporary file (mode 0600) in the same folder and renames it,
// so a reader sees the old snapshot or the new one, never a part.
func WriteLive(storePath string, l Live) error {
	path := LivePath(storePath)
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("live status %s: %w", path, err)
	}
	for len(b) < liveSize-1 {
		b = append(b, ' ')
	}
	b = append(b, '\n')
	if err := replaceFile(path, b); err != nil {
		// No room for a new file (a full disk): overwrite the old snapshot
		// where it stands, which needs no new space. A reader may then see
		// a torn snapshot for a moment; status is what matters once the
		// run has ended.
		if ierr := overwrite(path, b); ierr != nil {
			return err
		}
	}
	return nil
}

// overwrite writes b over the start of the existing file at path, if it
// is at least as long.
func overwrite(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < int64(len(b)) {
		err = errors.New("the old snapshot is too short")
	}
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceFile replaces the file at path with b atomically.
func replaceFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("live status %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("live status %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("live status %s: writing: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("live status %s: writing: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("live status %s: %w", path, err)
	}
	return nil
}

// CheckLive checks, before a run sends anything, that it can publish its
// live snapshot next to the store at storePath: the folder takes a new
// file, and the snapshot's name is free or a regular file. The error names
// the path.
func CheckLive(storePath string) error {
	path := LivePath(storePath)
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("store %s: its live status file %s is not a regular file (a run replaces it as it goes): remove it", storePath, path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("store %s: its folder %s cannot take the live status file %s: %w", storePath, dir, filepath.Base(path), withoutPath(err))
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return nil
}

// ReadLive reads the live snapshot of the store at storePath. When there is
// none the error wraps fs.ErrNotExist.
func ReadLive(storePath string) (Live, error) {
	path := LivePath(storePath)
	b, err := os.ReadFile(path)
	if err != nil {
		return Live{}, fmt.Errorf("live status: %w", err)
	}
	var l Live
	if err := json.Unmarshal(b, &l); err != nil {
		return Live{}, fmt.Errorf("live status %s: not a bulkenroll live status: %w", path, err)
	}
	return l, nil
}

// Alive reports whether the snapshot describes a run still going at now:
// not Done, written on this host by a process that still exists, and
// updated within LiveStaleAfter. (A PID can be reused by another process;
// the freshness check covers that.)
func (l Live) Alive(now time.Time) bool {
	if l.Done || !l.Fresh(now) {
		return false
	}
	host, err := os.Hostname()
	if err != nil || host != l.Host {
		return false
	}
	return processExists(l.PID)
}

// Fresh reports whether the snapshot was updated within LiveStaleAfter of
// now (and not in the future by more than that: a clock step).
func (l Live) Fresh(now time.Time) bool {
	age := now.Sub(l.Updated)
	return age <= LiveStaleAfter && age >= -LiveStaleAfter
}
