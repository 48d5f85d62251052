package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer"
	"bulkenroll/importer/photosource"
	"bulkenroll/manifest"
)

// validateOptions are the settings of `bulkenroll validate`.
type validateOptions struct {
	streams
	Manifest      string
	Product       string
	JSON          bool
	MaxPhotoBytes int64
	// Workers checks that many remote photos (object storage, https) at once.
	Workers int
	// PhotoHTTPClient fetches https photos (tests); default photosource's own.
	PhotoHTTPClient *http.Client
}

func validateCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check every row of a manifest offline; send nothing, write nothing",
		UsageText: "bulkenroll validate --manifest FILE [--product backfill|compare] [--json] [--workers N]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Required: true, Usage: "CSV manifest `FILE` (- for standard input)"},
			&cli.BoolFlag{Name: "json", Usage: "print the problems and counts as JSON"},
			&cli.StringFlag{Name: "product", Value: "backfill", Usage: "`PRODUCT` whose manifest columns to check: backfill or compare (SmartSelfie Compare)"},
			&cli.Int64Flag{Name: "max-photo-bytes", Value: manifest.DefaultMaxPhotoBytes, Usage: "photo size limit in bytes"},
			&cli.IntFlag{Name: "workers", Value: 8, Usage: "remote photos (s3://, gs://, azblob://, https://) checked at once"},
		},
		Action: func(c *cli.Context) error {
			return validateManifest(c.Context, validateOptions{streams: io, Manifest: c.String("manifest"), Product: c.String("product"),
				JSON: c.Bool("json"), MaxPhotoBytes: c.Int64("max-photo-bytes"), Workers: c.Int("workers")})
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
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Workers > 256 {
		return usagef("--workers %d: want 1 to 256", o.Workers)
	}
	product, err := manifest.ParseProduct(o.Product)
	if err != nil {
		return usagef("--product: %v", err)
	}
	rd, err := openProductManifest(o.Manifest, o.In, product)
	if err != nil {
		return err
	}
	defer rd.Close()
	val := manifest.Validator{MaxPhotoBytes: o.MaxPhotoBytes}
	dups := manifest.NewDuplicates()
	out := newProblemWriter(o.Out, o.JSON)
	// Remote photos are checked by a pool (existence and size with a HEAD
	// or attributes call, the type from the first bytes); results are
	// printed in the manifest's order through a window of pending checks.
	photos := photosource.New(photosource.Options{MaxBytes: o.MaxPhotoBytes, HTTPClient: o.PhotoHTTPClient})
	defer photos.Close()
	slots := make(chan struct{}, o.Workers)
	var rows, invalid int
	var queue []pendingCheck // in manifest order; the head is printed first
	emit := func(pc pendingCheck, re *manifest.RowError) {
		if re != nil {
			invalid++
			out.problem(problem{Line: pc.row.Line, UserID: pc.row.UserID, Field: re.Field, Reason: re.Error()})
		}
	}
	// flush prints the checks at the head of the queue that are done,
	// waiting for them while more than keep are queued.
	flush := func(keep int) {
		for len(queue) > 0 {
			pc := queue[0]
			switch {
			case pc.result == nil:
				emit(pc, pc.re)
			case len(queue) > keep:
				emit(pc, <-pc.result)
			default:
				select {
				case re := <-pc.result:
					emit(pc, re)
				default:
					return
				}
			}
			queue = queue[1:]
		}
	}
	readErr := func() error {
		for n := 0; ; n++ {
			if n%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			row, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return nil
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
			pc := pendingCheck{row: row, re: re}
			if re == nil && hasRemote(&row) {
				pc.result = make(chan *manifest.RowError, 1)
				slots <- struct{}{}
				go func() {
					defer func() { <-slots }()
					pc.result <- checkRemoteImages(ctx, photos, &row, o.MaxPhotoBytes)
				}()
			}
			queue = append(queue, pc)
			flush(4 * o.Workers)
		}
	}()
	flush(0)
	if readErr != nil {
		return readErr
	}
	out.end(rows, invalid)
	if invalid > 0 {
		return errRowsNotDone
	}
	return nil
}

// hasRemote reports whether any image of row is remote.
func hasRemote(row *manifest.Row) bool {
	for _, img := range row.Images() {
		if photosource.IsRemote(img.Path) {
			return true
		}
	}
	return false
}

// checkRemoteImages checks the remote images of row, one after the other,
// and returns the first problem, naming the image's field.
func checkRemoteImages(ctx context.Context, photos *photosource.Opener, row *manifest.Row, maxBytes int64) *manifest.RowError {
	for _, img := range row.Images() {
		if !photosource.IsRemote(img.Path) {
			continue
		}
		if re := importer.CheckRemotePhoto(ctx, photos, img.Path, maxBytes); re != nil {
			if row.Compare != nil {
				return &manifest.RowError{Field: img.Field, Reason: re.Reason}
			}
			return re
		}
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

// pendingCheck is a row whose check may still be running: re is the
// problem found (nil: none) unless result is set, which then delivers it.
type pendingCheck struct {
	row    manifest.Row
	re     *manifest.RowError
	result chan *manifest.RowError
}
