package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/store"
)

// statusOptions are the settings of `bulkenroll status`.
type statusOptions struct {
	streams
	StorePath string
	JSON      bool
	// now returns the time; tests set it. nil: time.Now.
	now func() time.Time
}

func statusCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a store's counts by state, its partner ID and base URL, and the last run (live while a run holds the store)",
		UsageText: "bulkenroll status [--store FILE] [--json]",
		Flags:     []cli.Flag{storeFlag(), &cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(c *cli.Context) error {
			return showStatus(statusOptions{streams: io, StorePath: c.String("store"), JSON: c.Bool("json")})
		},
	}
}

// statusJSON is what `status --json` prints.
type statusJSON struct {
	Store     string         `json:"store"`
	PartnerID string         `json:"partner_id"`
	BaseURL   string         `json:"base_url"`
	Shard     string         `json:"shard,omitempty"`
	Product   string         `json:"product,omitempty"`
	Counts    map[string]int `json:"counts"`
	Total     int            `json:"total"`
	LastRun   *store.Run     `json:"last_run,omitempty"`
	// Live is the snapshot a killed last run left, or the last one of a
	// run whose end the store could not record (see liveJSON).
	Live *liveJSON `json:"live,omitempty"`
}

// liveStatusJSON is what `status --json` prints while a run holds the
// store: the counts are the run's, in live.
type liveStatusJSON struct {
	Store string    `json:"store"`
	Shard string    `json:"shard,omitempty"`
	Live  *liveJSON `json:"live"`
}

// liveJSON is a run's live snapshot as `status --json` shows it: running
// while the run goes on; killed when the store's last run has no end and
// the process that published the snapshot is gone.
type liveJSON struct {
	store.Live
	Running bool `json:"running"`
	Killed  bool `json:"killed,omitempty"`
}

// showStatus is `bulkenroll status`. While a run holds the store it shows
// the run's live snapshot instead (see store.Live).
func showStatus(o statusOptions) error {
	if o.now == nil {
		o.now = time.Now
	}
	st, err := store.Open(o.StorePath, store.Options{ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return showLiveStatus(o, err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	meta, err := st.Meta()
	if err != nil {
		return err
	}
	counts, err := st.Counts()
	if err != nil {
		return err
	}
	last, hasLast, err := st.LastRun()
	if err != nil {
		return err
	}
	s := statusJSON{Store: o.StorePath, PartnerID: meta.PartnerID, BaseURL: meta.BaseURL, Shard: meta.Shard, Product: string(meta.Product), Counts: map[string]int{}}
	for _, state := range store.States {
		s.Counts[string(state)] = counts[state]
		s.Total += counts[state]
	}
	// The store opened, so no run holds it: a last run without an end was
	// killed. Its snapshot, if it left one, tells how far it went.
	// A run that ended but whose end the store could not record (a full
	// disk) says so in its last snapshot: it was not killed.
	killed, unrecorded := false, false
	if hasLast {
		s.LastRun = &last
		if last.Outcome == "running" && last.Ended.IsZero() {
			if l, err := store.ReadLive(o.StorePath); err == nil && l.RunID == last.ID {
				switch {
				case l.Done:
					unrecorded = true
					s.Live = &liveJSON{Live: l}
				case !l.Alive(o.now()):
					killed = true
					s.Live = &liveJSON{Live: l, Killed: true}
				}
			}
		}
	}
	if o.JSON {
		return printJSON(o.Out, s)
	}
	w := o.Out
	fmt.Fprintf(w, "store     %s\n", s.Store)
	fmt.Fprintf(w, "partner   %s\n", orNone(s.PartnerID))
	fmt.Fprintf(w, "base URL  %s\n", orNone(s.BaseURL))
	if s.Shard != "" {
		fmt.Fprintf(w, "shard     %s\n", s.Shard)
	}
	if s.Product != "" {
		fmt.Fprintf(w, "product   %s\n", s.Product)
	}
	for _, state := range store.States {
		fmt.Fprintf(w, "%-9s %d\n", state, counts[state])
	}
	fmt.Fprintf(w, "total     %d\n", s.Total)
	if hasLast {
		outcome := last.Outcome
		if unrecorded {
			outcome = "ended without recording its end"
		}
		fmt.Fprintf(w, "last run  #%d %s, started %s", last.ID, outcome, last.Started.Local().Format(time.DateTime))
		if !last.Ended.IsZero() {
			fmt.Fprintf(w, ", took %s", last.Ended.Sub(last.Started).Round(100*time.Millisecond))
		}
		fmt.Fprintf(w, " (manifest %s)\n", last.Manifest)
		switch {
		case killed:
			l := s.Live.Live
			fmt.Fprintf(w, "          run #%d was killed (its process is gone); the next run resumes\n", last.ID)
			fmt.Fprintf(w, "          its last status, %s: %d rows read, %d enrolled (pid %d on %s)\n",
				l.Updated.Local().Format(time.DateTime), l.Rows, l.Enrolled, l.PID, l.Host)
		case unrecorded:
			l := s.Live.Live
			why := l.EndNotRecorded
			if why == "" {
				why = "the store could not be written"
			}
			fmt.Fprintf(w, "          run #%d ended at %s, but the store could not record its end: %s\n",
				last.ID, l.Updated.Local().Format(time.DateTime), why)
			fmt.Fprintf(w, "          it read %d rows: %d enrolled, %d skipped, %d rejected, %d failed, %d pending", l.Rows, l.Enrolled, l.Skipped, l.Rejected, l.Failed, l.Pending)
			if l.Unsaved > 0 {
				fmt.Fprintf(w, " (%d of them because their results could not be saved)", l.Unsaved)
			}
			fmt.Fprintln(w, "; the counts above are what the store holds; the next run resumes")
		case last.Outcome == "running":
			fmt.Fprintln(w, "          (no end recorded: it is running, or it was killed; the next run resumes)")
		}
	}
	return nil
}

// showLiveStatus is `status` while another process holds the store
// (lockErr): the run's live snapshot, if it publishes one and is alive.
func showLiveStatus(o statusOptions, lockErr error) error {
	l, err := store.ReadLive(o.StorePath)
	now := o.now()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w\n  it is in use by a run that publishes no live status (started by an older bulkenroll?); try again when it ends", lockErr)
	case err != nil:
		return fmt.Errorf("%w\n  and its live status cannot be read: %v", lockErr, err)
	}
	running := l.Alive(now)
	// A run on another host (a shared volume) cannot be checked by PID:
	// a fresh snapshot of a run that has not ended will do, since the
	// lock is held.
	otherHost := false
	if !running && !l.Done && l.Fresh(now) {
		if host, _ := os.Hostname(); host != l.Host {
			running, otherHost = true, true
		}
	}
	if !running {
		what := "its process is gone (killed?)"
		if l.Done {
			what = "it ended"
		}
		return fmt.Errorf("%w\n  it is in use by a process that published no live status; the last one, from run #%d (pid %d on %s, updated %s ago), is stale: %s",
			lockErr, l.RunID, l.PID, l.Host, now.Sub(l.Updated).Round(time.Second), what)
	}
	if o.JSON {
		return printJSON(o.Out, liveStatusJSON{Store: o.StorePath, Shard: l.Shard, Live: &liveJSON{Live: l, Running: true}})
	}
	printLive(o.Out, o.StorePath, l, now, otherHost)
	return nil
}

// printLive writes a running import's snapshot for people.
func printLive(w io.Writer, storePath string, l store.Live, now time.Time, otherHost bool) {
	fmt.Fprintf(w, "store     %s (in use by run #%d, pid %d on %s)\n", storePath, l.RunID, l.PID, l.Host)
	fmt.Fprintf(w, "run       #%d running since %s (%s), manifest %s\n", l.RunID,
		l.Started.Local().Format(time.DateTime), now.Sub(l.Started).Round(time.Second), l.Manifest)
	if l.Shard != "" {
		fmt.Fprintf(w, "shard     %s\n", l.Shard)
	}
	if l.Total >= 0 {
		pct := 0.0
		if l.Total > 0 {
			pct = 100 * float64(l.Rows) / float64(l.Total)
		}
		fmt.Fprintf(w, "rows      %d of %d (%.1f%%)\n", l.Rows, l.Total, pct)
	} else {
		fmt.Fprintf(w, "rows      %d (total not known yet)\n", l.Rows)
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"enrolled", l.Enrolled}, {"skipped", l.Skipped}, {"rejected", l.Rejected}, {"failed", l.Failed}, {"pending", l.Pending}} {
		fmt.Fprintf(w, "%-9s %d\n", c.name, c.n)
	}
	// The run's figures, worded as its progress line words them.
	fmt.Fprintf(w, "speed     %.1f rows/s", l.RowsPerSecond)
	if l.Rate <= 0 {
		fmt.Fprint(w, " · no rate limit")
	}
	if t := observe.ControlText(liveControl(l)); t != "" {
		fmt.Fprint(w, " · "+t)
	}
	fmt.Fprintln(w)
	if l.ETASeconds > 0 {
		eta := time.Duration(l.ETASeconds * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(w, "ETA       %s (about %s)\n", eta, l.Updated.Add(eta).Local().Format(time.DateTime))
	} else {
		fmt.Fprintln(w, "ETA       unknown")
	}
	if !l.LastSuccess.IsZero() {
		fmt.Fprintf(w, "last enrollment %s ago\n", now.Sub(l.LastSuccess).Round(time.Second))
	}
	fmt.Fprintf(w, "updated   %s ago", now.Sub(l.Updated).Round(time.Second))
	if otherHost {
		fmt.Fprint(w, " (the run is on another host; its process was not checked)")
	}
	fmt.Fprintln(w)
}

// liveControl is the rate and concurrency control of a live snapshot.
func liveControl(l store.Live) event.Control {
	return event.Control{Rate: l.Rate, LearnedRate: l.LearnedRate, InFlight: l.InFlight, Window: l.Window,
		Limiter: event.Limiter(l.Limiter), DownSince: l.DownSince}
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the status: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}
