package main

import (
	"encoding/csv"
	"encoding/json"
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
}

func reportCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print one record per user in the store",
		UsageText: "bulkenroll report [--store FILE] [--state S] [--format csv|jsonl]",
		Flags: []cli.Flag{storeFlag(),
			&cli.StringFlag{Name: "state", Usage: "only rows in state `S` (enrolled, rejected, failed, pending)"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or jsonl"},
		},
		Action: func(c *cli.Context) error {
			return writeReport(reportOptions{streams: io, StorePath: c.String("store"),
				State: c.String("state"), Format: c.String("format")})
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
	st, err := store.Open(o.StorePath, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	var emit func(reportRecord) error
	var flush func() error
	if o.Format == "csv" {
		cw := csv.NewWriter(o.Out)
		_ = cw.Write([]string{"user_id", "state", "result_code", "result_text", "smile_job_id", "attempts", "error", "updated_at"})
		emit = func(r reportRecord) error {
			return cw.Write([]string{r.UserID, r.State, r.ResultCode, r.ResultText, r.SmileJobID,
				strconv.Itoa(r.Attempts), r.Error, r.UpdatedAt})
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(o.Out)
		emit = func(r reportRecord) error { return enc.Encode(r) }
		flush = func() error { return nil }
	}
	err = st.Each(state, func(rec store.Record) error {
		return emit(reportRecord{UserID: rec.UserID, State: string(rec.State), ResultCode: rec.ResultCode,
			ResultText: rec.ResultText, SmileJobID: rec.SmileJobID, Attempts: rec.Attempts, Error: rec.Error,
			UpdatedAt: rec.UpdatedAt.UTC().Format(time.RFC3339)})
	})
	if err != nil {
		return err
	}
	return flush()
}
