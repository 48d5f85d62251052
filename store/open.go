package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Open opens the store at path, creating it (mode 0600) unless opts.ReadOnly.
// A store held by another process fails at once with ErrLocked; a file that is
// not a store fails with ErrNotStore and is left as it was.
func Open(path string, opts Options) (*Store, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if opts.ReadOnly {
			return nil, fmt.Errorf("store %s: %w (run an import first, or pass --store)", path, ErrNotFound)
		}
		if err := create(path, opts.NoSync); err != nil {
			return nil, fmt.Errorf("store %s: creating it: %w", path, withoutPath(err))
		}
	case err != nil:
		return nil, fmt.Errorf("store %s: %w", path, withoutPath(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("store %s: %w: not a regular file", path, ErrNotStore)
	case fi.Size() > 0:
		if err := checkHeader(path); err != nil {
			return nil, fmt.Errorf("store %s: %w", path, withoutPath(err))
		}
		if !opts.ReadOnly {
			// Checked read-only first: nothing is written to a damaged store,
			// and bbolt's writable open (which loads the free list) never
			// meets a damaged page.
			if err := check(path, opts.LockTimeout); err != nil {
				return nil, err
			}
		}
	case !opts.ReadOnly:
		// An empty file (made by touch, or by a tool that reserves the
		// name) becomes a new store, as it always did.
		if err := create(path, opts.NoSync); err != nil {
			return nil, fmt.Errorf("store %s: creating it: %w", path, withoutPath(err))
		}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 200 * time.Millisecond
	}
	db, err := openBolt(path, &bolt.Options{
		Timeout:      timeout,
		ReadOnly:     opts.ReadOnly,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("store %s: %w", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
			return nil, fmt.Errorf("store %s: %w: %w", path, ErrNotStore, withoutPath(err))
		}
		return nil, fmt.Errorf("store %s: %w", path, withoutPath(err))
	}
	s := &Store{db: db, path: path}
	if opts.ReadOnly {
		if err := s.verify(); err != nil { // see check.go; a writable open checked first
			db.Close()
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	}
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if !opts.ReadOnly {
		s.w = newWriter(db, path)
	}
	releaseMapped(db) // whatever opening and checking the file read
	return s, nil
}

// withoutPath drops the path from an *fs.PathError, whose message would
// repeat the store's path after "store PATH:"; errors.Is still sees through.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// openBolt opens the bbolt file, turning a panic on a damaged file into an error.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", berrors.ErrInvalid, p)
		}
	}()
	if db, err = bolt.Open(path, 0o600, o); err == nil {
		db.AllocSize = allocSize
	}
	return db, err
}

// allocSize is how much a store's file grows by when it is full: a quarter
// of bbolt's default, so the file stays within 4 MiB of what it holds (a
// million users take about 180 MiB, not the next 16 MiB step).
const allocSize = 4 << 20

// create makes a new store at path: it is built in a temporary file in
// the same folder and linked into place only once whole, so a creation that
// fails (no space left, a file size limit) leaves no file behind. Another
// process creating the same store at once wins; its store is then opened.
func create(path string, noSync bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // the store is linked at path by then, or was never made
	if err := tmp.Close(); err != nil {
		return err
	}
	id, err := newStoreID()
	if err != nil {
		return err
	}
	db, err := openBolt(name, &bolt.Options{Timeout: time.Second, NoSync: noSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	err = updateTx(db, func(tx *bolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyStoreID, id); err != nil {
			return err
		}
		return meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339)))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(name, path); errors.Is(err, fs.ErrExist) {
		// Someone made the store meanwhile, or the name is an empty file:
		// only an empty file is replaced.
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			err = os.Rename(name, path)
		} else {
			err = nil
		}
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if !noSync {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir makes a new name in dir durable, as far as the system allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// checkFormat checks the format of the store, in a read transaction: opening a
// store writes nothing (a run refused by a later check leaves the file as
// it was). bbolt panics on a damaged page; that is a damaged store, not a crash.
func (s *Store) checkFormat() error {
	return s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no meta bucket", ErrNotStore)
		}
		if v := meta.Get(keyFormat); string(v) != formatVersion {
			return fmt.Errorf("%w: format %q, want %q", ErrNotStore, v, formatVersion)
		}
		return checkBuckets(tx)
	})
}
