package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"bulkenroll/importer"
	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// report tells how the run ended (the summary on standard error unless the
// JSON log holds it, and --json's on standard output) and returns the error
// the exit code comes from: the run's, or errRowsNotDone when rows were left
// rejected, failed or pending.
func (o runOptions) report(s importer.Summary, runErr error, st *store.Store, jsonLog bool) error {
	if !jsonLog {
		printSummary(o.streams, s, runErr, o.Rejects, st, o.Import.RateAuto)
	}
	if o.JSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(o.Out, string(b))
	}
	switch {
	case runErr != nil:
		return runErr
	case s.DryRun && s.Rejected > 0:
		// A dry run's pending rows are its plan, not rows left undone.
		return errRowsNotDone
	case !s.DryRun && !s.OK():
		return errRowsNotDone
	}
	return nil
}

// printSummary tells a person on standard error how the run ended.
func printSummary(io streams, s importer.Summary, runErr error, rejects string, st *store.Store, auto bool) {
	w := io.Err
	head := "run"
	if s.RunID > 0 {
		head = fmt.Sprintf("run %d", s.RunID)
	}
	if s.DryRun {
		head = "dry run (nothing sent, nothing written)"
	}
	fmt.Fprintf(w, "bulkenroll: %s %s in %.1fs\n", head, howEnded(runErr), s.Seconds)
	if r := rateSummary(s.Stats, auto, s.SustainedQuota > 0); r != "" && !s.DryRun {
		fmt.Fprintf(w, "  requests  %s\n", r)
	}
	fmt.Fprintf(w, "  rows      %d\n", s.Rows)
	fmt.Fprintf(w, "  enrolled  %d\n", s.Enrolled)
	fmt.Fprintf(w, "  skipped   %d  (enrolled before)\n", s.Skipped)
	fmt.Fprintf(w, "  rejected  %d\n", s.Rejected)
	fmt.Fprintf(w, "  failed    %d  (the next run tries them again)\n", s.Failed)
	if s.DryRun {
		fmt.Fprintf(w, "  pending   %d  (would be sent)\n", s.Pending)
	} else {
		fmt.Fprintf(w, "  pending   %d  (not done by this run; they keep the state they had, and the next run does them)\n", s.Pending)
	}
	if s.Unsaved > 0 {
		fmt.Fprintf(w, "  not saved %d  (counted pending: the store could not save their results, %d of them answers from Smile ID;\n", s.Unsaved, s.UnsavedAnswers)
		fmt.Fprintln(w, "            the store keeps what it had for them, for a row sent the mark saved before sending (outcome unknown):")
		fmt.Fprintln(w, "            the next run does them again, and Smile ID's 2209 for a user this run enrolled then counts as enrolled)")
	}
	if s.Stats.EndNotRecorded != "" {
		fmt.Fprintf(w, "  the store could not record the end of the run: %s\n", s.Stats.EndNotRecorded)
	}
	if s.Partial {
		fmt.Fprintln(w, "  (stopped before every row was read; the rows not read are not counted and stay as they were)")
	}
	if s.Rejected > 0 && !s.DryRun {
		if rejects != "" {
			fmt.Fprintf(w, "rejected rows are listed in %s\n", rejects)
		} else if st != nil {
			fmt.Fprintf(w, "list the rejected rows with: bulkenroll report --store %s --state rejected\n", st.Path())
		}
	}
}

// howEnded words how a run that returned runErr ended, for the summary's
// first line.
func howEnded(runErr error) string {
	var ae *importer.AccountError
	var fe *smileid.ForeignAnswerError
	var we *store.WriteError
	var oe *importer.OutageError
	switch {
	case runErr == nil:
		return "finished"
	case errors.Is(runErr, importer.ErrInterrupted):
		return "interrupted"
	case errors.As(runErr, &oe):
		return fmt.Sprintf("stopped: Smile ID has not answered since %s (--outage-limit %s)", oe.Since.UTC().Format("2006-01-02 15:04:05 UTC"), oe.Limit)
	case errors.As(runErr, &ae):
		return "stopped by Smile ID"
	case errors.As(runErr, &fe):
		return "stopped: the answers are not Smile ID's"
	case errors.As(runErr, &we):
		return "stopped: the store could not be written"
	}
	return "failed"
}

// rateSummary describes the requests of a run: how many, how many were
// throttled, and the rate and concurrency control's figures, worded as the
// progress line words them (saved: the learned quota was measured as a
// sustained limit and is remembered for the next run).
func rateSummary(s event.Stats, auto, saved bool) string {
	var sent int64
	for _, n := range s.Requests {
		sent += n
	}
	if sent == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d sent", sent)
	if n := s.Requests[smileid.AnswerThrottled]; n > 0 {
		fmt.Fprintf(&b, ", %d throttled (429)", n)
	}
	fmt.Fprintf(&b, "; %.1f rows/s", s.RowsPerSecond())
	if s.LearnedRate > 0 && auto && saved {
		fmt.Fprintf(&b, "; %s (sustained: the next run starts near it)", observe.LearnedText(s.LearnedRate))
	} else if s.LearnedRate > 0 && auto {
		fmt.Fprintf(&b, "; %s (not yet sustained: not saved)", observe.LearnedText(s.LearnedRate))
	} else if s.Rate > 0 {
		fmt.Fprintf(&b, "; rate limit %.1f/s", s.Rate)
	}
	if s.Window > 0 {
		fmt.Fprintf(&b, "; window %d", s.Window)
	}
	if s.Limiter == event.LimitWorkers {
		b.WriteString("; " + observe.Hint(s.Control))
	}
	return b.String()
}
