package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/manifest"
	"bulkenroll/store"
)

// reportOptions are the settings of `bulkenroll report`.
type reportOptions struct {
	streams
	StorePath string
	State     string
	Format    string
	// Manifest, when set, lists the manifest's rows in its order instead of
	// the store's records, each with its state: a row with no record was
	// never reached and is pending.
	Manifest string
	// Run keeps only the records of rows last settled by run N (0: all).
	Run uint64
	// Verify lists the verification results (report_verify.go) instead.
	Verify bool
	// Salvage reads the store file page by page, without checking it first:
	// every record still readable of a damaged store (see store.SalvageRecords).
	Salvage bool
}

func reportCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print one record per user in the store",
		UsageText: "bulkenroll report [--store FILE] [--state S] [--run N] [--format csv|jsonl] [--manifest FILE | --salvage | --verify]",
		Flags: []cli.Flag{storeFlag(),
			&cli.StringFlag{Name: "manifest", Usage: "one line per row of manifest `FILE`, in its order (rows never reached: pending)"},
			&cli.StringFlag{Name: "state", Usage: "only rows in state `S` (enrolled, rejected, failed, pending)"},
			&cli.Uint64Flag{Name: "run", Usage: "only rows last settled by run `N` (see status for run numbers)"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or jsonl"},
			&cli.BoolFlag{Name: "verify", Usage: "list the results of bulkenroll verify instead: one line per authentication job"},
			&cli.BoolFlag{Name: "salvage", Usage: "list every record still readable of a damaged store (copy it away first); exit 2 if some are not"},
		},
		Action: func(c *cli.Context) error {
			return writeReport(reportOptions{streams: io, StorePath: c.String("store"),
				State: c.String("state"), Format: c.String("format"), Run: c.Uint64("run"), Manifest: c.String("manifest"),
				Salvage: c.Bool("salvage"), Verify: c.Bool("verify")})
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
	// JobID is PartnerParams.job_id of Smile ID's answer (after the
	// contract's columns, so scripts that read them by position still work).
	JobID string `json:"job_id"`
	// PhotoNote says how --fix-photos converted the photo, if it did.
	PhotoNote string `json:"photo_note"`
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
	if o.Verify && (o.Salvage || o.Manifest != "" || o.State != "" || o.Run != 0) {
		return usagef("--verify lists verification results: it takes only --store and --format")
	}
	if o.Salvage {
		if o.Manifest != "" {
			return usagef("--salvage lists the store's records: it does not take --manifest")
		}
		return salvageReport(o, state)
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
	if o.Verify {
		return verifyReport(o, st)
	}
	if o.Run != 0 {
		last, found, err := st.LastRun()
		if err != nil {
			return err
		}
		if !found || o.Run > last.ID {
			return usagef("--run %d: store %s has no run #%d (%s)", o.Run, o.StorePath, o.Run, runsSoFar(last, found))
		}
	}
	emit, flush := reportWriter(o)
	each := func(fn func(store.Record) error) error { return st.Each(state, fn) }
	if o.Manifest != "" {
		each = func(fn func(store.Record) error) error { return eachManifestRow(o.Manifest, o.In, st, state, fn) }
	}
	err = each(func(rec store.Record) error {
		if o.Run != 0 && rec.Run != o.Run {
			return nil
		}
		return emit(rec)
	})
	if err != nil {
		return err
	}
	return flush()
}

// reportWriter returns the function that writes one record in o.Format to
// o.Out, and the one that flushes what it wrote.
func reportWriter(o reportOptions) (emit func(store.Record) error, flush func() error) {
	var line func(reportRecord) error
	if o.Format == "csv" {
		cw := csv.NewWriter(o.Out)
		_ = cw.Write([]string{"user_id", "state", "result_code", "result_text", "smile_job_id", "attempts", "error", "updated_at", "job_id", "photo_note"})
		line = func(r reportRecord) error {
			return cw.Write([]string{r.UserID, r.State, r.ResultCode, r.ResultText, r.SmileJobID,
				strconv.Itoa(r.Attempts), r.Error, r.UpdatedAt, r.JobID, r.PhotoNote})
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(o.Out)
		line = func(r reportRecord) error { return enc.Encode(r) }
		flush = func() error { return nil }
	}
	emit = func(rec store.Record) error {
		updated := ""
		if !rec.UpdatedAt.IsZero() {
			updated = rec.UpdatedAt.UTC().Format(time.RFC3339)
		}
		return line(reportRecord{UserID: rec.UserID, State: string(rec.State), ResultCode: rec.ResultCode,
			ResultText: rec.ResultText, SmileJobID: rec.SmileJobID, JobID: rec.JobID, PhotoNote: rec.PhotoNote, Attempts: rec.Attempts, Error: rec.Error,
			UpdatedAt: updated})
	}
	return emit, flush
}

// salvageReport is `bulkenroll report --salvage`: every record of the store
// that can still be read, in the usual format, with the filters given; on
// standard error, how many could not be read. The store is read as a file,
// never opened for writing, and not refused when damaged. Some records
// unreadable: an error, exit 2, after the listing.
func salvageReport(o reportOptions, state store.State) error {
	emit, flush := reportWriter(o)
	res, err := store.SalvageRecords(o.StorePath, func(rec store.Record) error {
		if (state != "" && rec.State != state) || (o.Run != 0 && rec.Run != o.Run) {
			return nil
		}
		return emit(rec)
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if !res.Unreadable() {
		fmt.Fprintf(o.Err, "bulkenroll: salvage: all %d records of %s were read\n", res.Records, o.StorePath)
		return nil
	}
	msg := fmt.Sprintf("salvage: %d records of %s were read; %d records could not be read", res.Records, o.StorePath, len(res.BadRecords))
	if res.BadPages > 0 {
		msg += fmt.Sprintf(", nor %d pages of records (how many records they held is unknown)", res.BadPages)
	}
	for i, k := range res.BadRecords {
		if i == 10 {
			msg += fmt.Sprintf("\n  and %d more", len(res.BadRecords)-10)
			break
		}
		msg += fmt.Sprintf("\n  unreadable: the record of user %q", k)
	}
	return fmt.Errorf("%s: %w", msg, store.ErrDamaged)
}

// eachManifestRow calls fn with the record of every row of the manifest at
// path, in its order: the user's record, the record kept under the row's
// line (a row refused before it had a user), or, for a row no run has
// reached, a pending record that says so.
//
// The manifest is read with the columns of the store's product (a compare
// store's manifest is a compare manifest).
func eachManifestRow(path string, in io.Reader, st *store.Store, state store.State, fn func(store.Record) error) error {
	product := manifest.ProductBackfill
	if p, err := st.Product(); err == nil && p == store.Compare {
		product = manifest.ProductCompare
	}
	rd, err := openProductManifest(path, in, product)
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var rowErr *manifest.RowError
		if err != nil && !errors.As(err, &rowErr) {
			return fmt.Errorf("reading the manifest: %w", err)
		}
		// A row refused before it had a user of its own (a duplicate, a bad
		// user_id, a malformed record) is kept under its line by the
		// latest run; any other row under its user.
		rec, found, err := st.Get(store.RowKey(row.Line))
		if err != nil {
			return err
		}
		if !found && rowErr == nil && row.UserID != "" {
			if rec, found, err = st.Get(row.UserID); err != nil {
				return err
			}
		}
		if !found {
			rec = store.Record{UserID: row.UserID, State: store.Pending, Line: row.Line,
				Error: "not reached yet: no run has read this row"}
		}
		if state != "" && rec.State != state {
			continue
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
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
