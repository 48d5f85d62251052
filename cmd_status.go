package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/store"
)

// statusOptions are the settings of `bulkenroll status`.
type statusOptions struct {
	streams
	StorePath string
	JSON      bool
}

func statusCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a store's counts by state, its partner ID and base URL, and the last run",
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
	Counts    map[string]int `json:"counts"`
	Total     int            `json:"total"`
	LastRun   *store.Run     `json:"last_run,omitempty"`
}

// showStatus is `bulkenroll status`.
func showStatus(o statusOptions) error {
	st, err := store.Open(o.StorePath, store.Options{ReadOnly: true})
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
	s := statusJSON{Store: o.StorePath, PartnerID: meta.PartnerID, BaseURL: meta.BaseURL, Counts: map[string]int{}}
	for _, state := range store.States {
		s.Counts[string(state)] = counts[state]
		s.Total += counts[state]
	}
	if hasLast {
		s.LastRun = &last
	}
	if o.JSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(o.Out, string(b))
		return nil
	}
	w := o.Out
	fmt.Fprintf(w, "store     %s\n", s.Store)
	fmt.Fprintf(w, "partner   %s\n", orNone(s.PartnerID))
	fmt.Fprintf(w, "base URL  %s\n", orNone(s.BaseURL))
	for _, state := range store.States {
		fmt.Fprintf(w, "%-9s %d\n", state, counts[state])
	}
	fmt.Fprintf(w, "total     %d\n", s.Total)
	if hasLast {
		fmt.Fprintf(w, "last run  #%d %s, started %s", last.ID, last.Outcome, last.Started.Local().Format(time.DateTime))
		if !last.Ended.IsZero() {
			fmt.Fprintf(w, ", took %s", last.Ended.Sub(last.Started).Round(100*time.Millisecond))
		}
		fmt.Fprintf(w, " (manifest %s)\n", last.Manifest)
		if last.Outcome == "running" {
			fmt.Fprintln(w, "          (no end recorded: it is running, or it was killed; the next run resumes)")
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}
