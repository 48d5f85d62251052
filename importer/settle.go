package importer

import (
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// settle is the one place that ends a row's part in the run: it saves rec
// under key (nothing in a dry run), counts the row in rec.State and tells
// the observers. code and reason are what the operator is told.
func (r *runner) settle(key string, row manifest.Row, rec store.Record, code, reason string) {
	if !r.opts.DryRun && r.st != nil {
		r.st.Put(key, rec)
	}
	r.live.count(rec.State)
	r.tell(RowEvent{Row: row, State: rec.State, Code: code, Reason: reason})
}

// skip counts a row found enrolled by an earlier run; nothing is written.
func (r *runner) skip() { r.live.skipped.Add(1) }

// notReached ends a row the run did not send: it keeps the state and fields
// it had before this run (a mark made for it is undone), and the summary
// counts it pending, as not done by this run.
func (r *runner) notReached(j job, reason string) {
	if !r.opts.DryRun && r.st != nil && j.marked {
		if j.found {
			r.st.Put(j.key, j.prior)
		} else {
			r.st.Delete(j.key)
		}
	}
	r.live.pending.Add(1)
	r.tell(RowEvent{Row: j.row, State: store.Pending, Reason: reason})
}

// pendingRow counts a row read but never planned (the run stopped first).
func (r *runner) pendingRow(row manifest.Row, reason string) {
	r.live.pending.Add(1)
	r.tell(RowEvent{Row: row, State: store.Pending, Reason: reason})
}

func (r *runner) tell(ev RowEvent) {
	for _, o := range r.obs {
		o.Row(ev)
	}
}
