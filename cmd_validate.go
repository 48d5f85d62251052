package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"bulkenroll/manifest"
)

// validateOptions are the settings of `bulkenroll validate`.
type validateOptions struct {
	streams
	Manifest      string
	JSON          bool
	MaxPhotoBytes int64
}

func validateCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check every row of a manifest offline; send nothing, write nothing",
		UsageText: "bulkenroll validate --manifest FILE [--json]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Required: true, Usage: "CSV manifest `FILE` (- for standard input)"},
			&cli.BoolFlag{Name: "json", Usage: "print the problems and counts as JSON"},
			&cli.Int64Flag{Name: "max-photo-bytes", Value: manifest.DefaultMaxPhotoBytes, Usage: "photo size limit in bytes"},
		},
		Action: func(c *cli.Context) error {
			return validateManifest(c.Context, validateOptions{streams: io, Manifest: c.String("manifest"),
				JSON: c.Bool("json"), MaxPhotoBytes: c.Int64("max-photo-bytes")})
		},
	}
}

// problem is one invalid row, as --json prints it.
type problem struct {
	Line   int    `json:"line"`
	UserID string `json:"user_id"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// validateManifest is `bulkenroll validate`.
func validateManifest(ctx context.Context, o validateOptions) error {
	if o.MaxPhotoBytes <= 0 {
		return usagef("--max-photo-bytes %d: want a positive size", o.MaxPhotoBytes)
	}
	rd, err := openManifest(o.Manifest, o.In)
	if err != nil {
		return err
	}
	defer rd.Close()
	val := manifest.Validator{MaxPhotoBytes: o.MaxPhotoBytes}
	dups := manifest.NewDuplicates()
	out := newProblemWriter(o.Out, o.JSON)
	var rows, invalid int
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *manifest.RowError
		if err != nil && !errors.As(err, &re) {
			return fmt.Errorf("reading the manifest: %w", err)
		}
		rows++
		if re == nil {
			err = val.CheckFields(&row)
			errors.As(err, &re)
		}
		if re == nil || re.Field != "user_id" && re.Field != manifest.FieldRow {
			if first := dups.Seen(row.UserID, row.Line); first != 0 {
				re = &manifest.RowError{Field: "user_id", Reason: fmt.Sprintf("duplicate of line %d", first)}
			}
		}
		if re == nil {
			if _, err := val.CheckPhoto(&row); err != nil && !errors.As(err, &re) {
				re = &manifest.RowError{Field: "photo", Reason: err.Error()}
			}
		}
		if re != nil {
			invalid++
			out.problem(problem{Line: row.Line, UserID: row.UserID, Field: re.Field, Reason: re.Error()})
		}
	}
	out.end(rows, invalid)
	if invalid > 0 {
		return errRowsNotDone
	}
	return nil
}

// problemWriter prints problems as they are found, as text lines or as one
// JSON object streamed out (so a huge manifest costs no memory).
type problemWriter struct {
	w     io.Writer
	json  bool
	count int
}

func newProblemWriter(w io.Writer, asJSON bool) *problemWriter {
	if asJSON {
		fmt.Fprint(w, `{"problems":[`)
	}
	return &problemWriter{w: w, json: asJSON}
}

func (p *problemWriter) problem(pr problem) {
	if !p.json {
		fmt.Fprintf(p.w, "line %d: %s: %s\n", pr.Line, manifest.DisplayID(pr.UserID), pr.Reason)
		return
	}
	if p.count > 0 {
		fmt.Fprint(p.w, ",")
	}
	p.count++
	b, _ := json.Marshal(pr)
	p.w.Write(b)
}

func (p *problemWriter) end(rows, invalid int) {
	if p.json {
		fmt.Fprintf(p.w, `],"rows":%d,"valid":%d,"invalid":%d}`+"\n", rows, rows-invalid, invalid)
		return
	}
	fmt.Fprintf(p.w, "%d rows: %d valid, %d invalid\n", rows, rows-invalid, invalid)
}
