package importer

import (
	"errors"
	"io"
	"time"
)

// drainLimit bounds how long a stopped run spends counting the rows it
// did not read.
const drainLimit = 5 * time.Second

// drain counts the rows an early stop left unread as pending: the run did
// nothing with them, so they keep whatever state the store had for them
// (the next run decides), and nothing is written or looked up for them, so
// a stop at row 10 of a million-row manifest costs one quick read of the
// file. Rows of a pipe or terminal are not waited for: the summary is then
// partial, as it is when counting takes longer than drainLimit.
func (r *runner) drain(rows <-chan read) {
	if !r.opts.ManifestIsFile {
		r.partial = true
		return
	}
	deadline := time.Now().Add(drainLimit)
	for n := 0; ; n++ {
		if n%1024 == 0 && time.Now().After(deadline) {
			r.partial = true
			return
		}
		res, ok := <-rows
		if !ok || errors.Is(res.err, io.EOF) {
			return
		}
		if res.err != nil {
			// The stop's cause is what the run reports; the rest is uncounted.
			r.partial = true
			return
		}
		r.live.rows.Add(1)
		r.live.pending.Add(1)
	}
}
