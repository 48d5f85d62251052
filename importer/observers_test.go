package importer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/event"
	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/testkit"
	"bulkenroll/store"
)

// recorder is an observer that keeps what it is told, and fails its Flush
// with flushErr when it is set (an event.Flusher).
type recorder struct {
	flushErr error

	mu       sync.Mutex
	started  bool
	rows     []event.RowEvent
	flushed  int
	final    *event.Stats
	finalErr error
}

func (r *recorder) Start(func() event.Stats) { r.mu.Lock(); r.started = true; r.mu.Unlock() }

func (r *recorder) Row(ev event.RowEvent) { r.mu.Lock(); r.rows = append(r.rows, ev); r.mu.Unlock() }

func (r *recorder) Finish(final event.Stats, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.final, r.finalErr = &final, err
}

func (r *recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushed++
	return r.flushErr
}

// TestRunTellsObservers: every observer is started, told of each settled
// row, flushed once if it is a Flusher, and finished with the final figures
// and their outcome; a Flush that fails fails the run, and the run history
// and the final figures say so.
func TestRunTellsObservers(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("flush fails=", fail), func(t *testing.T) {
			f := newFixture(t, 3)
			path := f.write(t)
			_, _, hs := testkit.NewSandbox(t, sandbox.Options{})
			st := newStore(t)
			first, second := &recorder{}, &recorder{}
			if fail {
				first.flushErr = errors.New("writing the rejects file: disk full")
			}
			opts := fastOptions()
			opts.Observers = []event.Observer{first, second}
			sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
			wantOutcome := event.Finished
			if fail {
				wantOutcome = event.Failed
				if !errors.Is(err, first.flushErr) {
					t.Fatalf("Run: %v, want the Flush's error", err)
				}
			} else if err != nil {
				t.Fatalf("Run: %v", err)
			}
			wantSummary(t, sum, importer.Summary{Rows: 3, Enrolled: 3})
			for i, r := range []*recorder{first, second} {
				if !r.started || len(r.rows) != 3 || r.flushed != 1 || r.final == nil {
					t.Fatalf("observer %d: started %v, %d rows, %d flushes, finished %v", i, r.started, len(r.rows), r.flushed, r.final != nil)
				}
				if r.final.Outcome != wantOutcome || r.final.Enrolled != 3 || !errors.Is(r.finalErr, err) {
					t.Errorf("observer %d: finished with outcome %q, %d enrolled, err %v; want %q, 3, %v",
						i, r.final.Outcome, r.final.Enrolled, r.finalErr, wantOutcome, err)
				}
			}
			if sum.Stats.Outcome != wantOutcome {
				t.Errorf("summary's figures: outcome %q, want %q", sum.Stats.Outcome, wantOutcome)
			}
			if last, _, _ := st.LastRun(); last.Outcome != wantOutcome {
				t.Errorf("run history: outcome %q, want %q", last.Outcome, wantOutcome)
			}
		})
	}
}

// TestOutcome: how a run's error is named in the run history and the
// final figures.
func TestOutcome(t *testing.T) {
	api := &smileid.APIError{Status: 401, Code: "2205", Text: "Unauthorized"}
	cases := []struct {
		err  error
		want string
	}{
		{nil, event.Finished},
		{importer.ErrInterrupted, event.Interrupted},
		{context.Canceled, event.Interrupted},
		{fmt.Errorf("reading: %w", importer.ErrInterrupted), event.Interrupted},
		{&importer.AccountError{API: api}, event.Stopped},
		{&smileid.ForeignAnswerError{API: &smileid.APIError{Status: 502, NotSmileID: true}}, event.Stopped},
		{&importer.OutageError{Since: time.Unix(0, 0), Limit: time.Minute}, event.Stopped},
		{&store.WriteError{Err: errors.New("disk full")}, event.Failed},
		{errors.New("manifest: line 3: bad quoting"), event.Failed},
	}
	for _, c := range cases {
		if got := importer.Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
