package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fillPercent is how full bbolt fills a page before it splits it.
const fillPercent = 0.9

// maxBatch bounds how many writes one transaction commits.
const maxBatch = 4096

// errClosed is returned for writes queued after Close.
var errClosed = errors.New("store is closed")

// op is one queued write, or a flush marker when bucket is nil.
type op struct {
	bucket []byte // bucketUsers
	key    string
	rec    Record
	del    bool // delete key instead of writing it
	seq    uint64
	done   chan error // nil: nobody waits
	// then, when set, is called once the batch holding this write has
	// committed (nil) or failed: the write is then durable, or never will be.
	then func(error)
	// answer marks a record that holds Smile ID's answer: its commit binds
	// an unbound store (see Store.BindOnAnswer).
	answer bool
}

// overlayKey names a key of a bucket in the overlay.
func overlayKey(bucket []byte, key string) string {
	return string(bucket[:1]) + key
}

// writer is the store's single writing goroutine: it drains the queue into
// one bbolt transaction at a time (group commit), so that concurrent callers
// share fsyncs, and keeps queued records visible to Get until committed.
type writer struct {
	db    *bolt.DB
	path  string // the store's file, for errors
	queue chan op
	quit  chan struct{}
	exit  chan struct{}

	// sendMu is held (shared) by every send to queue and (exclusive) by
	// close while it shuts the queue, so no write can slip in after the
	// final flush and be lost.
	sendMu sync.RWMutex

	mu      sync.Mutex
	overlay map[string]op // latest queued, not yet committed write per overlayKey
	seq     uint64
	err     error
	closed  bool
	// bind is the binding the first committed answer records (nil: none
	// to record, the store is bound already or nobody asked).
	bind *binding

	released int // writes committed since the last releaseMapped (loop only)
}

// releaseEvery is how many committed writes (about as many rows read and
// written) pass between two releases of the store's mapped pages.
const releaseEvery = 4096

func newWriter(db *bolt.DB, path string) *writer {
	w := &writer{
		db:      db,
		path:    path,
		queue:   make(chan op, maxBatch),
		quit:    make(chan struct{}),
		exit:    make(chan struct{}),
		overlay: make(map[string]op),
	}
	go w.loop()
	return w
}

func (w *writer) put(key string, rec Record, done chan error) {
	w.enqueue(op{bucket: bucketUsers, key: key, rec: rec, done: done})
}

// putThen queues rec and calls then after its batch's commit (see op.then).
func (w *writer) putThen(key string, rec Record, answer bool, then func(error)) {
	w.enqueue(op{bucket: bucketUsers, key: key, rec: rec, then: then, answer: answer})
}

// del queues the deletion of key from bucketUsers.
func (w *writer) del(key string) {
	w.enqueue(op{bucket: bucketUsers, key: key, del: true})
}

func (w *writer) enqueue(o op) {
	w.sendMu.RLock()
	defer w.sendMu.RUnlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		if o.done != nil {
			o.done <- errClosed
		}
		if o.then != nil {
			o.then(errClosed)
		}
		return
	}
	w.seq++
	o.seq = w.seq
	w.overlay[overlayKey(o.bucket, o.key)] = o
	w.mu.Unlock()
	w.queue <- o
}

// pending returns the queued, not yet committed write of key in bucket.
func (w *writer) pending(bucket []byte, key string) (op, bool) {
	w.mu.Lock()
	o, ok := w.overlay[overlayKey(bucket, key)]
	w.mu.Unlock()
	return o, ok
}

func (w *writer) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// flush waits for everything queued before it to be committed.
func (w *writer) flush() error {
	w.sendMu.RLock()
	w.mu.Lock()
	if w.closed {
		err := w.err
		w.mu.Unlock()
		w.sendMu.RUnlock()
		return err
	}
	w.mu.Unlock()
	done := make(chan error, 1)
	w.queue <- op{done: done}
	w.sendMu.RUnlock()
	return <-done
}

// close refuses new writes, commits every write queued before it (those
// racing with it included: they either made the queue first or are refused)
// and stops the loop.
func (w *writer) close() error {
	w.sendMu.Lock()
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	w.sendMu.Unlock()
	if already {
		return w.error() // closed before: a second Close is harmless
	}
	done := make(chan error, 1)
	w.queue <- op{done: done}
	err := <-done
	close(w.quit)
	<-w.exit
	return err
}

func (w *writer) loop() {
	defer close(w.exit)
	batch := make([]op, 0, maxBatch)
	for {
		select {
		case o := <-w.queue:
			batch = append(batch[:0], o)
		case <-w.quit:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-w.queue:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		if !hasWaiter(batch) {
			batch = w.gather(batch)
		}
		w.commit(batch)
		if w.released += len(batch); w.released >= releaseEvery {
			w.released = 0
			releaseMapped(w.db)
		}
	}
}

// coalesce is how long writes nobody waits for may gather before they are
// committed. Without it every worker's result would cost a commit (two
// fsyncs) of its own; with it they ride along with the next durable batch or
// flush, or commit together at most this much later. A crash loses no more
// than that of them, and those rows are marked: the next run resends them.
const coalesce = 50 * time.Millisecond

// gather adds to batch the writes that arrive within coalesce, stopping early
// at a write somebody waits for, a full batch, or Close.
func (w *writer) gather(batch []op) []op {
	t := time.NewTimer(coalesce)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case o := <-w.queue:
			batch = append(batch, o)
			if o.done != nil {
				return batch
			}
		case <-t.C:
			return batch
		case <-w.quit:
			return batch
		}
	}
	return batch
}

func hasWaiter(batch []op) bool {
	for i := range batch {
		if batch[i].done != nil {
			return true
		}
	}
	return false
}

// commit writes one batch in one transaction and answers its waiters.
func (w *writer) commit(batch []op) {
	// Write each key's latest queued version: callers racing on one key may
	// reach the queue out of order, but never the overlay.
	w.mu.Lock()
	for i := range batch {
		o := &batch[i]
		if o.bucket == nil {
			continue
		}
		if cur, ok := w.overlay[overlayKey(o.bucket, o.key)]; ok {
			o.rec, o.del, o.seq = cur.rec, cur.del, cur.seq
		} else {
			o.bucket = nil // a newer version was committed already
		}
	}
	err := w.err
	bind := w.bind
	w.mu.Unlock()
	if bind != nil && (!hasAnswer(batch) || !hasWrite(batch)) {
		bind = nil // bound by the first commit that saves an answer
	}
	if err == nil && hasWrite(batch) {
		var buf []byte
		err = updateTx(w.db, func(tx *bolt.Tx) error {
			if bind != nil {
				if err := putBinding(tx, bind); err != nil {
					return err
				}
			}
			users := tx.Bucket(bucketUsers)
			// Fuller pages than bbolt's default half: imports mostly append,
			// and fewer pages mean a smaller file and less for bbolt to track.
			users.FillPercent = fillPercent
			for i := range batch {
				o := &batch[i]
				if o.bucket == nil {
					continue
				}
				if o.del {
					if err := users.Delete([]byte(o.key)); err != nil {
						return fmt.Errorf("deleting record %q: %w", o.key, err)
					}
					continue
				}
				// bbolt keeps the value's bytes until the commit: each record
				// gets its own bytes, cut from a shared block.
				if cap(buf) < 1024 {
					buf = make([]byte, 0, 64<<10)
				}
				v, err := appendRecord(buf[:0], o.key, &o.rec)
				if err != nil {
					return fmt.Errorf("encoding record %q: %w", o.rec.UserID, err)
				}
				v, buf = v[:len(v):len(v)], v[len(v):]
				if err := users.Put([]byte(o.key), v); err != nil {
					return fmt.Errorf("writing record %q: %w", o.rec.UserID, err)
				}
			}
			return nil
		})
	}
	w.mu.Lock()
	if err != nil && w.err == nil {
		w.err = &WriteError{Path: w.path, Err: err}
	}
	err = w.err
	if err == nil && bind != nil {
		w.bind = nil
	}
	for i := range batch {
		o := &batch[i]
		if o.bucket != nil && err == nil {
			k := overlayKey(o.bucket, o.key)
			if cur, ok := w.overlay[k]; ok && cur.seq == o.seq {
				delete(w.overlay, k)
			}
		}
	}
	w.mu.Unlock()
	for i := range batch {
		if batch[i].then != nil {
			batch[i].then(err)
		}
	}
	for i := range batch {
		if batch[i].done != nil {
			batch[i].done <- err
		}
	}
}

// hasWrite reports whether batch holds a write, not flushes only (an empty
// transaction would still write a new meta page: a flush writes nothing).
func hasWrite(batch []op) bool {
	for i := range batch {
		if batch[i].bucket != nil {
			return true
		}
	}
	return false
}

func hasAnswer(batch []op) bool {
	for i := range batch {
		if batch[i].answer {
			return true
		}
	}
	return false
}
