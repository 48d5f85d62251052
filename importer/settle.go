package importer

import (
	"fmt"

	"bulkenroll/importer/event"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// settle is the one place that ends a row's part in the run: it saves rec
// under key, and counts the row in rec.State and tells the observers once
// the store has committed it (at once in a dry run, which saves nothing):
// the counts are what the store holds. code and reason are what the
// operator is told.
func (r *runner) settle(key string, row manifest.Row, rec store.Record, code, reason string) {
	r.save(key, row, rec, code, reason, false)
}

// settleAnswer is settle for a row that got an answer from Smile ID (a
// verified enrollment, or a refusal with Smile ID's code): the commit that
// saves it binds a store not bound yet (store.BindOnAnswer).
func (r *runner) settleAnswer(key string, row manifest.Row, rec store.Record, code, reason string) {
	r.save(key, row, rec, code, reason, true)
}

func (r *runner) save(key string, row manifest.Row, rec store.Record, code, reason string, answer bool) {
	ev := event.RowEvent{Row: row, State: rec.State, Code: code, Reason: reason}
	if r.opts.DryRun || r.st == nil {
		r.live.count(rec.State)
		r.tell(ev)
		return
	}
	// Called by the store's writer after the commit, before a Flush returns.
	then := func(err error) {
		if err != nil {
			r.notSaved(ev, answer, err)
			return
		}
		r.live.count(ev.State)
		r.tell(ev)
	}
	if answer {
		r.st.PutAnswer(key, rec, then)
	} else {
		r.st.PutThen(key, rec, then)
	}
}

// notSaved ends a row whose result the store could not commit: the run
// stops sending at once (err is its cause), and the row counts as pending,
// as the store still holds what it had before (for a row that was sent:
// the mark saved before sending, which says the outcome is unknown, so the
// next run's 2209 for a user this run enrolled counts as enrolled).
func (r *runner) notSaved(ev event.RowEvent, answer bool, err error) {
	r.stop(err)
	r.live.unsaved.Add(1)
	if answer {
		r.live.unsavedAnswers.Add(1)
	}
	r.live.pending.Add(1)
	ev.Reason = fmt.Sprintf("not saved (%s): %v", ev.State, err)
	ev.State, ev.Code = store.Pending, ""
	r.tell(ev)
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
	r.tell(event.RowEvent{Row: j.row, State: store.Pending, Reason: reason})
}

// pendingRow counts a row read but never planned (the run stopped first).
func (r *runner) pendingRow(row manifest.Row, reason string) {
	r.live.pending.Add(1)
	r.tell(event.RowEvent{Row: row, State: store.Pending, Reason: reason})
}

func (r *runner) tell(ev event.RowEvent) {
	for _, o := range r.obs {
		o.Row(ev)
	}
}
