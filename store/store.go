// Package store is the bbolt checkpoint store of bulkenroll: one record per
// user with its state, the run history, and the partner ID and base URL the
// store was made for. Writes are batched by a single writer goroutine (group
// commit) so that the per-row cost is far below one fsync.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta  = []byte("meta")
	bucketUsers = []byte("users")
	bucketRuns  = []byte("runs")
	// bucketSeen held, in the stores of earlier versions, a "seen" mark per
	// user read by a run; duplicates are now found in memory and upgrade
	// (upgrade.go) drops the bucket.
	bucketSeen = []byte("seen")

	keyFormat    = []byte("format")
	keyPartnerID = []byte("partner_id")
	keyBaseURL   = []byte("base_url")
	keyCreated   = []byte("created_at")
	keyShard     = []byte("shard")
	keyLearned   = []byte("learned_rate")
)

// formatVersion is written into every store this code creates.
const formatVersion = "bulkenroll-store-1"

// Errors the store returns; callers match them with errors.Is.
var (
	// ErrLocked: another process holds the store.
	ErrLocked = errors.New("store is in use by another bulkenroll process")
	// ErrNotStore: the file is not a bulkenroll store, or is damaged.
	ErrNotStore = errors.New("not a bulkenroll store, or a damaged one")
	// ErrMismatch: the store was made for another partner ID or base URL.
	ErrMismatch = errors.New("store belongs to another partner or endpoint")
	// ErrReadOnly: a write to a store opened read-only.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrNotFound: the store file does not exist (read-only opens only).
	ErrNotFound = errors.New("store not found")
	// ErrShardMismatch: the store holds another shard of the manifest (or
	// none, or it is a shard's store and the run is not sharded).
	ErrShardMismatch = errors.New("store belongs to another shard")
)

// Options tune Open.
type Options struct {
	// ReadOnly opens the store for reading; the file must exist.
	ReadOnly bool
	// LockTimeout is how long to wait for another process's lock; default 200ms.
	LockTimeout time.Duration
	// NoSync skips fsync (tests and benchmarks of the store's own overhead only).
	NoSync bool
}

// Store is an open checkpoint store. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	w    *writer

	reads atomic.Int64 // records read by Get and Probe (see releaseEvery)
}

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

// openBolt opens the bbolt file, turning a panic on a damaged file into an error.
// withoutPath drops the path from an *fs.PathError, whose message would
// repeat the store's path after "store PATH:"; errors.Is still sees through.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

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

// checkHeader refuses, before bbolt touches it, a file whose first page is
// not a bbolt meta page (bbolt's magic after the 16-byte page header) or that is shorter than
// the four pages every bbolt file starts with.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [64]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("%w: too short to be one", ErrNotStore)
	}
	const magic = 0xED0CDAED
	if binary.LittleEndian.Uint32(hdr[16:20]) != magic {
		return fmt.Errorf("%w: no bbolt header", ErrNotStore)
	}
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:28]))
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if pageSize < 512 || fi.Size() < 4*pageSize || fi.Size()%pageSize != 0 {
		return fmt.Errorf("%w: file size %d does not fit its page size %d (truncated?)", ErrNotStore, fi.Size(), pageSize)
	}
	// The file must hold every page below its high-water mark: bbolt would
	// otherwise read past the end of a cut file (an assertion panic, or a
	// fault that cannot be recovered).
	if pages := highWater(f, pageSize); fi.Size() < pages*pageSize {
		return fmt.Errorf("%w: file size %d is shorter than the %d pages of %d bytes it holds (truncated?)",
			ErrNotStore, fi.Size(), pages, pageSize)
	}
	return nil
}

// highWater returns the high-water mark (page count) of the newer valid
// meta page of the bbolt file f, or 0 if neither is valid (bbolt then
// reports the damage itself).
func highWater(f *os.File, pageSize int64) int64 {
	var pages, txid int64 = 0, -1
	for i := range int64(2) {
		// Page header (16 bytes), then the meta: magic, version, page size,
		// flags, root bucket (16), freelist, pgid, txid, checksum (FNV-64a
		// of the meta fields before it).
		var p [80]byte
		if _, err := f.ReadAt(p[:], i*pageSize); err != nil {
			continue
		}
		h := fnv.New64a()
		h.Write(p[16:72])
		if binary.LittleEndian.Uint32(p[16:20]) != 0xED0CDAED || h.Sum64() != binary.LittleEndian.Uint64(p[72:80]) {
			continue
		}
		if tx := int64(binary.LittleEndian.Uint64(p[64:72])); tx > txid {
			txid, pages = tx, int64(binary.LittleEndian.Uint64(p[56:64]))
		}
	}
	return pages
}

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
	db, err := openBolt(name, &bolt.Options{Timeout: time.Second, NoSync: noSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketUsers, bucketRuns} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
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
		if tx.Bucket(bucketUsers) == nil || tx.Bucket(bucketRuns) == nil {
			return fmt.Errorf("%w: missing buckets", ErrNotStore)
		}
		return nil
	})
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

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

// PutDurable stores every record and returns once they are committed to disk.
func (s *Store) PutDurable(keys []string, recs []Record) error {
	return <-s.PutBatch(keys, recs)
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

// Err returns the first commit error, if any (always nil for a read-only
// store, which writes nothing).
func (s *Store) Err() error {
	if s.w == nil {
		return nil
	}
	return s.w.error()
}

// Flush waits until every queued write is committed (nothing to wait for
// in a read-only store).
func (s *Store) Flush() error {
	if s.w == nil {
		return nil
	}
	return s.w.flush()
}

// Close flushes queued writes and closes the file.
func (s *Store) Close() error {
	var err error
	if s.w != nil {
		err = s.w.close()
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
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

// Size returns the store file's size in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.view(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n
}
