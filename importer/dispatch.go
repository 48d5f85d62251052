package importer

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"bulkenroll/manifest"
	"bulkenroll/store"
)

// read is one result of reading the manifest: a row (rowErr set if it is
// refused), or the end (err io.EOF) or a failure to read on.
type read struct {
	row    manifest.Row
	rowErr *manifest.RowError
	err    error
}

// readRows reads the manifest in a goroutine of its own, so that a stop
// never waits for a silent producer (a pipe, standard input): the run stops
// listening, and the reader is left to the process's end. The channel is
// closed after the end or a failure.
//
// Rows of other shards (shard's Has is false for their user_id) are left
// out here, so no stage sees or counts them.
func readRows(rd *manifest.Reader, shard manifest.Shard, quit <-chan struct{}) <-chan read {
	out := make(chan read, 64)
	go func() {
		defer close(out)
		for {
			row, err := rd.Next()
			var rowErr *manifest.RowError
			res := read{row: row}
			switch {
			case err == nil:
			case errors.As(err, &rowErr):
				res.rowErr = rowErr
			default:
				res.err = err
			}
			if res.err == nil && !shard.Has(row.UserID) {
				continue
			}
			select {
			case out <- res:
			case <-quit:
				return
			}
			if res.err != nil {
				return
			}
		}
	}()
	return out
}

// pipeline runs the dispatcher and the workers until the manifest ends or
// the run stops, then counts the rows not read.
func (r *runner) pipeline(rd *manifest.Reader) error {
	quit := make(chan struct{})
	defer close(quit)
	rows := readRows(rd, r.opts.Shard, quit)
	pool := r.opts.PoolSize()
	jobs := make(chan job, 2*pool)
	var g errgroup.Group
	for range pool {
		g.Go(func() error {
			w := worker{r: r}
			for j := range jobs {
				w.do(j)
			}
			return nil // per-row failures are results, not errors
		})
	}
	readErr := r.dispatch(rows, jobs)
	close(jobs)
	_ = g.Wait()
	if readErr == nil && r.stopped() {
		r.drain(rows)
	}
	return readErr
}

// markBatch bounds how many rows are marked in one durable commit.
const markBatch = 256

// markCut is how many planned rows, at least, make a batch to mark while the
// workers are busy (when they run short, a batch goes at once, whatever its
// size). Each commit costs two fsyncs; at 64 rows a commit they stay a small
// part of a fast import's cost, and few rows are marked ahead of their request.
const markCut = 64

// markedBatch is a batch of jobs whose marks are committing; done says when.
type markedBatch struct {
	jobs []job
	done <-chan error
}

// dispatch reads rows, settles those that need no request, and hands the
// rest to the workers once their "being tried" mark is durable.
func (r *runner) dispatch(rows <-chan read, jobs chan<- job) error {
	// The marks commit in the background: a marker goroutine waits for each
	// batch's commit and then hands its jobs out, while this loop plans the
	// next rows. One fsync then covers every batch queued meanwhile (group
	// commit), and neither the planning nor the workers wait on it in turn.
	marked := make(chan markedBatch, 1)
	markerDone := make(chan struct{})
	go func() {
		defer close(markerDone)
		for mb := range marked {
			if err := <-mb.done; err != nil {
				r.stop(err)
			}
			for i, j := range mb.jobs {
				if r.stopped() {
					for _, j := range mb.jobs[i:] {
						r.notReached(j, "not reached: the run stopped early")
					}
					break
				}
				select {
				case jobs <- j:
				case <-r.ctx.Done():
					r.notReached(j, "not reached: the run stopped early")
				}
			}
		}
	}()
	defer func() {
		close(marked)
		<-markerDone
	}()
	var batch []job
	send := func() {
		if len(batch) == 0 {
			return
		}
		keys := make([]string, len(batch))
		recs := make([]store.Record, len(batch))
		for i := range batch {
			batch[i].marked = true
			keys[i], recs[i] = batch[i].key, batch[i].rec
		}
		// Queued marks are visible to Lookup at once, so plan sees them.
		marked <- markedBatch{jobs: batch, done: r.st.PutBatch(keys, recs)}
		batch = nil // the marker owns the sent one
	}
	abandon := func() {
		// Planned but not marked: never sent, nothing written for them.
		for _, j := range batch {
			r.notReached(j, "not reached: the run stopped early")
		}
		batch = nil
	}
	for {
		if r.stopped() {
			abandon()
			return nil
		}
		var res read
		var ok bool
		select {
		case res, ok = <-rows:
		default:
			// No row is ready (a silent pipe, a slow disk): hand out what
			// is planned before waiting, so no row waits for the next one.
			send()
			select {
			case <-r.ctx.Done():
				abandon()
				return nil
			case res, ok = <-rows:
			}
		}
		if r.stopped() && ok {
			// What came may be the end of the manifest, or a failure to
			// read it, rather than a row: only a row is counted.
			switch {
			case res.err == nil:
				r.live.rows.Add(1)
				r.pendingRow(res.row, "not reached: the run stopped early")
			case !errors.Is(res.err, io.EOF):
				r.partial = true // the rows after the failure are not counted
			}
			abandon()
			return nil
		}
		if !ok || errors.Is(res.err, io.EOF) {
			break
		}
		if res.err != nil {
			abandon()
			return fmt.Errorf("reading the manifest: %w", res.err)
		}
		r.live.rows.Add(1)
		j, ok := r.plan(res.row, res.rowErr)
		if !ok {
			continue
		}
		if r.opts.DryRun {
			r.live.pending.Add(1)
			continue
		}
		batch = append(batch, j)
		if len(batch) >= min(markBatch, max(cap(jobs), markCut)) || len(jobs) == 0 && len(marked) == 0 {
			send()
		}
	}
	send()
	return nil
}
