package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/store"
)

// reportOptions are the settings of `bulkenroll report`.
type reportOptions struct {
	streams
	StorePath string
	State     string
	Format    string
	// Run keeps only the records of rows last settled by run N (0: all).
	Run uint64
}

func reportCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print one record per user in the store",
		UsageText: "bulkenroll report [--store FILE] [--state S] [--run N] [--format csv|jsonl]",
		Flags: []cli.Flag{storeFlag(),
			&cli.StringFlag{Name: "state", Usage: "only rows in state `S` (enrolled, rejected, failed, pending)"},
			&cli.Uint64Flag{Name: "run", Usage: "only rows last settled by run `N` (see status for run numbers)"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or jsonl"},
		},
		Action: func(c *cli.Context) error {
			return writeReport(reportOptions{streams: io, StorePath: c.String("store"),
				State: c.String("state"), Format: c.String("format"), Run: c.Uint64("run")})
		},
	}
}

// reportRecord is one line of the report.
type reportRecord struct {
	UserID     string `json:"user_id"`
	State      string `json:"state"`
	ResultCode string `json:"result_code"`
	ResultText string `json:"result_text"`
	SmileJobID string `json:"smile_job_id"`
	JobID      string `json:"job_id"`
	Attempts   int    `json:"attempts"`
	Error      string `json:"error"`
	UpdatedAt  string `json:"updated_at"`
}

// writeReport is `bulkenroll report`.
func writeReport(o reportOptions) error {
	var state store.State
	if o.State != "" {
		var err error
		if state, err = store.ParseState(o.State); err != nil {
			return usagef("--state: %v", err)
		}
	}
	if o.Format != "csv" && o.Format != "jsonl" {
		return usagef("--format %q: want csv or jsonl", o.Format)
	}
	// A run holds the store's lock for hours: fail at once (Open waits
	// 200ms for a lock), never wait for it.
	st, err := store.Open(o.StorePath, store.Options{ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\n  a report needs the store to itself: run it when the import ends (or after stopping it with Ctrl-C or SIGTERM);\n  meanwhile `bulkenroll status --store %s` shows the run's live counts", err, o.StorePath)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if o.Run != 0 {
		last, found, err := st.LastRun()
		if err != nil {
			return err
		}
		if !found || o.Run > last.ID {
			return usagef("--run %d: store %s has no run #%d (%s)", o.Run, o.StorePath, o.Run, runsSoFar(last, found))
		}
	}
	var emit func(reportRecord) error
	var flush func() error
	if o.Format == "csv" {
		cw := csv.NewWriter(o.Out)
		_ = cw.Write([]string{"user_id", "state", "result_code", "result_text", "smile_job_id", "job_id", "attempts", "error", "updated_at"})
		emit = func(r reportRecord) error {
			return cw.Write([]string{r.UserID, r.State, r.ResultCode, r.ResultText, r.SmileJobID, r.JobID,
				strconv.Itoa(r.Attempts), r.Error, r.UpdatedAt})
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(o.Out)
		emit = func(r reportRecord) error { return enc.Encode(r) }
		flush = func() error { return nil }
	}
	err = st.Each(state, func(rec store.Record) error {
		if o.Run != 0 && rec.Run != o.Run {
			return nil
		}
		return emit(reportRecord{UserID: rec.UserID, State: string(rec.State), ResultCode: rec.ResultCode,
			ResultText: rec.ResultText, SmileJobID: rec.SmileJobID, JobID: rec.JobID, Attempts: rec.Attempts, Error: rec.Error,
			UpdatedAt: rec.UpdatedAt.UTC().Format(time.RFC3339)})
	})
	if err != nil {
		return err
	}
	return flush()
}

// runsSoFar says which runs a store holds, for an error message.
func runsSoFar(last store.Run, found bool) string {
	switch {
	case !found:
		return "it has no runs yet"
	case last.ID == 1:
		return "it has run #1 only"
	}
	return fmt.Sprintf("its runs are #1 to #%d", last.ID)
}
