package main

import (
	"context"
	"errors"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// `bulkenroll run` in files by concern: this one holds the command and the
// order of its steps; run_flags.go reads the flags, run_checks.go checks
// them and the store before anything is written, run_output.go wires the
// observers that show the run, run_summary.go tells how it ended.

// runOptions are the settings of `bulkenroll run`. Import holds those of
// the pipeline as it takes them (workers, rate, retries, photo rules, dry
// run, shard); runImport adds what it wires (the manifest's name and
// count, the learned quota, the observers). The rest is the command's own.
type runOptions struct {
	streams
	Cred      credentials
	StorePath string
	// Manifest is the manifest's path, or - for standard input.
	Manifest string
	// Import tunes the pipeline.
	Import importer.Options
	// Timeout is the time limit of one request.
	Timeout time.Duration
	// Rejects is the path of the CSV of the rows rejected in the run ("": none).
	Rejects string
	// JSON prints the summary as JSON on standard output.
	JSON bool
	// NoProgress shows no progress bar or progress lines.
	NoProgress bool
	// LogFormat is "text" (the default) or "json" (log/slog, one object a line).
	LogFormat string
	// MetricsFile and MetricsAddr publish Prometheus metrics during the run.
	MetricsFile, MetricsAddr string
	// Product is what the rows are enrolled with (--product): backfill,
	// the default, or compare (SmartSelfie Compare), which decides the
	// manifest's columns; Import.Compare holds compare's own settings.
	Product string
}

func runCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "import a manifest: validate, submit and checkpoint every row",
		UsageText: "bulkenroll run --manifest FILE [options]   (FILE - reads standard input)",
		Flags:     runFlags(),
		Action: func(c *cli.Context) error {
			o, err := runOptionsFrom(c, io)
			if err != nil {
				return err
			}
			return runImport(c.Context, o)
		},
	}
}

// runImport is `bulkenroll run`.
func runImport(ctx context.Context, o runOptions) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	var client *smileid.Client
	var cfg smileid.Config
	if !o.Import.DryRun || o.Cred.given() {
		if cfg, err = o.Cred.config(); err != nil {
			return err
		}
		client, err = smileid.NewClient(cfg, smileid.ClientOptions{Workers: o.Import.PoolSize(), Timeout: o.Timeout,
			UserAgent: "bulkenroll/" + version})
		if err != nil {
			return err
		}
	}
	product, _ := manifest.ParseProduct(o.Product) // checked by o.check
	rd, err := openProductManifest(o.Manifest, o.In, product)
	if err != nil {
		return err
	}
	defer rd.Close()

	// Every check of the store (live file's folder, lock, header, format,
	// binding, shard) comes before anything is written to it: a refused run
	// leaves the file as it was.
	st, err := openRunStore(o.StorePath, o.Import.DryRun, cfg, o.Import.Shard, store.Product(product))
	if err != nil {
		return err
	}
	if st != nil {
		defer func() {
			if cerr := st.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	out, err := o.output(ctx, st)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			out.warnMetrics(o)
		}
		out.close()
	}()
	if st != nil && !o.Import.DryRun {
		// The checks are done: the first write to the store.
		if err := st.BindShard(o.Import.Shard.String()); err != nil {
			return err
		}
		if err := st.BindProduct(store.Product(product)); err != nil {
			return err
		}
	}

	opts := o.Import
	opts.Manifest = o.Manifest
	opts.Observers = out.observers
	if product == manifest.ProductCompare {
		opts.Compare.Comparer = dryComparer{} // a dry run without credentials sends nothing
		if client != nil {
			opts.Compare.Comparer = client
		}
	}
	if opts.RateAuto && st != nil {
		if meta, err := st.Meta(); err == nil && meta.LearnedRate > 0 {
			opts.LearnedRate = min(meta.LearnedRate, opts.MaxRate)
		}
	}
	// Only a regular file can be read twice: a pipe (-, /dev/stdin, <(...))
	// is read once, by the import, and its rows are never counted ahead.
	opts.ManifestIsFile = o.Manifest != "-" && manifest.IsRegularFile(o.Manifest)
	if opts.ManifestIsFile {
		opts.Count = func() (int, error) { return manifest.CountShard(o.Manifest, opts.Shard) }
	}

	importing.Store(true)
	defer importing.Store(false)
	var sub importer.Submitter
	if client != nil {
		sub = client
	}
	sum, runErr := importer.Run(ctx, rd, st, sub, opts)
	if opts.RateAuto && st != nil && !opts.DryRun && sum.SustainedQuota > 0 {
		// Only a quota measured as a sustained limit is remembered: a bad
		// night never caps the next run, which starts near it and probes up.
		if err := st.SetLearnedRate(sum.SustainedQuota); err != nil && runErr == nil {
			runErr = err
		}
	}
	err = o.report(sum, runErr, st, out.log != nil)
	if out.log != nil && runErr != nil {
		// The summary record holds the error: standard error stays one
		// JSON object a line.
		err = reported{err}
	}
	return err
}

// dryComparer stands in for the client in a dry run without credentials:
// a dry run sends nothing.
type dryComparer struct{}

// Compare refuses: it is never called.
func (dryComparer) Compare(context.Context, smileid.CompareRequest) (*smileid.CompareResult, error) {
	return nil, errors.New("a dry run sends nothing")
}
