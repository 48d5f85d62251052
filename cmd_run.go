package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer"
	"bulkenroll/importer/metrics"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// runOptions are the settings of `bulkenroll run`.
type runOptions struct {
	streams
	Cred      credentials
	StorePath string
	Manifest  string
	// Workers is a fixed pool (--workers N); 0 with AutoWorkers.
	Workers int
	// AutoWorkers lets the requests in flight follow the rate (--workers
	// auto, the default), up to MaxWorkers.
	AutoWorkers bool
	MaxWorkers  int
	// OutageLimit stops a run the service has not answered for this long.
	OutageLimit time.Duration
	// ThrottleLimit fails a row throttled (429) for this long.
	ThrottleLimit time.Duration
	Rate          float64
	// RateAuto discovers the quota (--rate auto, the default) up to MaxRate.
	RateAuto bool
	MaxRate  float64
	// FixPhotos converts photos Smile ID would refuse before sending.
	FixPhotos     bool
	Retries       int
	Timeout       time.Duration
	Rejects       string
	DryRun        bool
	JSON          bool
	NoProgress    bool
	RetryRejected bool
	MaxPhotoBytes int64
	// Shard limits the run to one shard of the manifest (zero: all rows).
	Shard manifest.Shard
	// LogFormat is "text" (the default) or "json" (log/slog, one object a line).
	LogFormat string
	// MetricsFile and MetricsAddr publish Prometheus metrics during the run.
	MetricsFile, MetricsAddr string
	// ReportEvery is the time between progress lines without a bar (tests shorten it).
	ReportEvery time.Duration
	// Transport replaces the HTTP transport (tests only).
	Transport http.RoundTripper
	// Product is what the rows are enrolled with: backfill (the default)
	// or compare (SmartSelfie Compare), which decides the manifest's columns.
	Product string
	// AllowNewEnroll and CallbackURL are sent with compare jobs.
	AllowNewEnroll bool
	CallbackURL    string
}

func runCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "import a manifest: validate, submit and checkpoint every row",
		UsageText: "bulkenroll run --manifest FILE [options]   (FILE - reads standard input)",
		Flags: append(credentialFlags(), storeFlag(),
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Required: true, Usage: "CSV manifest `FILE` (- for standard input)"},
			&cli.StringFlag{Name: "product", Value: "backfill", Usage: "`PRODUCT` to enroll with: backfill (job type 4) or compare (SmartSelfie Compare: selfie, liveness images and a photo on file); a store holds one product"},
			&cli.BoolFlag{Name: "allow-new-enroll", Usage: "compare: send allow_new_enroll=true (re-enroll users already enrolled)"},
			&cli.StringFlag{Name: "callback-url", Usage: "compare: send callback_url `URL` (Smile ID posts each job's result there)"},
			&cli.StringFlag{Name: "workers", Value: "auto", Usage: "requests in flight: auto (as many as the rate needs, up to --max-workers) or a fixed number"},
			&cli.IntFlag{Name: "max-workers", Value: 256, Usage: "ceiling of --workers auto"},
			&cli.DurationFlag{Name: "outage-limit", Value: 15 * time.Minute, Usage: "stop the run (exit 1, rows not done stay pending) when Smile ID has not answered for this long"},
			&cli.DurationFlag{Name: "throttle-limit", Value: 10 * time.Minute, Usage: "fail a row throttled (HTTP 429) for this long; throttles use up no --retries"},
			&cli.StringFlag{Name: "rate", Value: "auto", Usage: "requests per second over all workers: auto (find Smile ID's quota from its 429s, up to --max-rate), a number (a fixed limit), or 0 (no limit)"},
			&cli.Float64Flag{Name: "max-rate", Value: 50, Usage: "ceiling of --rate auto, requests per second"},
			&cli.BoolFlag{Name: "fix-photos", Usage: "convert photos Smile ID would refuse (over the size limit, WebP, GIF, BMP, TIFF, rotated by EXIF) to JPEG before sending; the files are not changed"},
			&cli.IntFlag{Name: "retries", Value: 5, Usage: "retries of a transient failure"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "time limit of one request"},
			&cli.StringFlag{Name: "rejects", Usage: "write the rows rejected in this run to CSV `FILE`"},
			&cli.BoolFlag{Name: "dry-run", Usage: "validate and plan; send nothing, write nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on standard output"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar or progress lines"},
			&cli.BoolFlag{Name: "retry-rejected", Usage: "send again rows Smile ID refused before, even with an unchanged photo"},
			&cli.Int64Flag{Name: "max-photo-bytes", Value: manifest.DefaultMaxPhotoBytes, Usage: "photo size limit in bytes"},
			&cli.StringFlag{Name: "shard", Usage: "import only shard `K/N` of the manifest (0 <= K < N, by a stable hash of user_id)"},
			&cli.IntFlag{Name: "shards", Usage: "import shard $JOB_COMPLETION_INDEX of `N` (Kubernetes Indexed Jobs)"},
			&cli.StringFlag{Name: "log-format", EnvVars: []string{"BULKENROLL_LOG_FORMAT"}, Value: "text", Usage: "text, or json: one JSON object per line on standard error"},
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `FILE` during the run (textfile collector)"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://`ADDR`/metrics during the run"},
		),
		Action: func(c *cli.Context) error {
			shard, err := shardFrom(c.String("shard"), c.Int("shards"))
			if err != nil {
				return err
			}
			rate, auto, err := parseRate(c.String("rate"))
			if err != nil {
				return err
			}
			workers, autoWorkers, err := parseWorkers(c.String("workers"))
			if err != nil {
				return err
			}
			return runImport(c.Context, runOptions{
				Shard:          shard,
				LogFormat:      c.String("log-format"),
				MetricsFile:    c.String("metrics-file"),
				MetricsAddr:    c.String("metrics-addr"),
				streams:        io,
				Cred:           credentialsFrom(c),
				StorePath:      c.String("store"),
				Manifest:       c.String("manifest"),
				Workers:        workers,
				AutoWorkers:    autoWorkers,
				MaxWorkers:     c.Int("max-workers"),
				OutageLimit:    c.Duration("outage-limit"),
				ThrottleLimit:  c.Duration("throttle-limit"),
				Rate:           rate,
				RateAuto:       auto,
				MaxRate:        c.Float64("max-rate"),
				FixPhotos:      c.Bool("fix-photos"),
				Retries:        c.Int("retries"),
				Timeout:        c.Duration("timeout"),
				Rejects:        c.String("rejects"),
				DryRun:         c.Bool("dry-run"),
				JSON:           c.Bool("json"),
				NoProgress:     c.Bool("no-progress"),
				RetryRejected:  c.Bool("retry-rejected"),
				MaxPhotoBytes:  c.Int64("max-photo-bytes"),
				Product:        c.String("product"),
				AllowNewEnroll: c.Bool("allow-new-enroll"),
				CallbackURL:    c.String("callback-url"),
			})
		},
	}
}

// runImport is `bulkenroll run`.
func runImport(ctx context.Context, o runOptions) (err error) {
	switch {
	case !o.AutoWorkers && (o.Workers < 1 || o.Workers > 256):
		return usagef("--workers %d: want auto or 1 to 256", o.Workers)
	case o.AutoWorkers && (o.MaxWorkers < 1 || o.MaxWorkers > 4096):
		return usagef("--max-workers %d: want 1 to 4096", o.MaxWorkers)
	case o.OutageLimit <= 0:
		return usagef("--outage-limit %s: want a positive duration", o.OutageLimit)
	case o.ThrottleLimit <= 0:
		return usagef("--throttle-limit %s: want a positive duration", o.ThrottleLimit)
	case o.Rate < 0:
		return usagef("--rate %g: want auto, 0 (no limit) or more", o.Rate)
	case o.RateAuto && o.MaxRate <= 0:
		return usagef("--max-rate %g: want a positive rate", o.MaxRate)
	case o.Retries < 0:
		return usagef("--retries %d: want 0 or more", o.Retries)
	case o.Timeout <= 0:
		return usagef("--timeout %s: want a positive duration", o.Timeout)
	case o.MaxPhotoBytes <= 0:
		return usagef("--max-photo-bytes %d: want a positive size", o.MaxPhotoBytes)
	case o.LogFormat != "" && o.LogFormat != "text" && o.LogFormat != "json":
		return usagef("--log-format %q: want text or json", o.LogFormat)
	}
	product, err := manifest.ParseProduct(o.Product)
	if err != nil {
		return usagef("--product: %v", err)
	}
	if product != manifest.ProductCompare && (o.AllowNewEnroll || o.CallbackURL != "") {
		return usagef("--allow-new-enroll and --callback-url apply to --product compare only")
	}
	// Output paths are checked before anything is read, sent or written.
	if o.MetricsFile != "" {
		if err := checkOutputFile("--metrics-file", o.MetricsFile, false); err != nil {
			return err
		}
	}
	if o.Rejects != "" {
		if err := checkOutputFile("--rejects", o.Rejects, true); err != nil {
			return err
		}
	}

	var client *smileid.Client
	var cfg smileid.Config
	if !o.DryRun || o.Cred.given() {
		if cfg, err = o.Cred.config(); err != nil {
			return err
		}
		pool := o.Workers
		if o.AutoWorkers {
			pool = o.MaxWorkers
		}
		client, err = smileid.NewClient(cfg, smileid.ClientOptions{Workers: pool, Timeout: o.Timeout,
			Transport: o.Transport, UserAgent: "bulkenroll/" + version})
		if err != nil {
			return err
		}
	}

	rd, err := openProductManifest(o.Manifest, o.In, product)
	if err != nil {
		return err
	}
	defer rd.Close()

	if !o.DryRun {
		// The live status file goes next to the store: its folder must take
		// it (checked without touching the file, which a run holding the
		// store may be writing).
		if err := store.CheckLive(o.StorePath); err != nil {
			return err
		}
	}
	// Every check of the store (lock, header, format, binding, shard) comes
	// before anything is written to it: a refused run leaves the file as
	// it was.
	st, err := openRunStore(o.StorePath, o.DryRun, cfg, o.Shard, store.Product(product))
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

	opts := importer.Options{
		Workers: o.Workers, Rate: o.Rate, Retries: o.Retries, MaxPhotoBytes: o.MaxPhotoBytes,
		RetryRejected: o.RetryRejected, DryRun: o.DryRun, Manifest: o.Manifest, Shard: o.Shard,
		RateAuto: o.RateAuto, MaxRate: o.MaxRate, FixPhotos: o.FixPhotos,
		AutoWorkers: o.AutoWorkers, MaxWorkers: o.MaxWorkers, OutageLimit: o.OutageLimit, ThrottleLimit: o.ThrottleLimit,
	}
	if product == manifest.ProductCompare {
		opts.Compare = importer.CompareOptions{Comparer: dryComparer{}, AllowNewEnroll: o.AllowNewEnroll, CallbackURL: o.CallbackURL}
		if client != nil {
			opts.Compare.Comparer = client
		}
	}
	if o.RateAuto && st != nil {
		if meta, err := st.Meta(); err == nil && meta.LearnedRate > 0 {
			opts.LearnedRate = min(meta.LearnedRate, o.MaxRate)
		}
	}
	if o.Rejects != "" {
		f, err := os.OpenFile(o.Rejects, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("rejects file: %w", err)
		}
		defer f.Close()
		_ = f.Chmod(0o600) // it names users; an older file keeps no looser mode
		opts.Rejects = f
	}
	if st != nil && !o.DryRun {
		// The checks are done: the first write to the store.
		if err := st.BindShard(o.Shard.String()); err != nil {
			return err
		}
		if err := st.BindProduct(store.Product(product)); err != nil {
			return err
		}
	}
	jsonLog := o.LogFormat == "json"
	bar := o.ErrTTY && !o.NoProgress && !jsonLog
	every := o.ReportEvery
	if o.NoProgress {
		every = 1<<63 - 1 // no periodic lines; problems and the summary still print
	}
	var logger *slog.Logger
	if jsonLog {
		// One JSON object a line on standard error: rows, progress, summary.
		logger = slog.New(slog.NewJSONHandler(o.Err, nil))
		opts.Observers = append(opts.Observers, importer.NewLogObserver(logger, every))
	} else {
		opts.Progress = importer.NewProgress(o.Err, bar, every)
	}
	// Only a regular file can be read twice: a pipe (-, /dev/stdin, <(...))
	// is read once, by the import, and its rows are never counted ahead.
	opts.ManifestIsFile = o.Manifest != "-" && manifest.IsRegularFile(o.Manifest)
	if opts.ManifestIsFile {
		opts.Count = func() (int, error) { return manifest.CountShard(o.Manifest, o.Shard) }
	}
	if st != nil && !o.DryRun {
		opts.Observers = append(opts.Observers, importer.NewLiveFile(st.Path(), o.Manifest, o.Shard.String(), 0))
	}
	if o.MetricsFile != "" || o.MetricsAddr != "" {
		labels := map[string]string{}
		if !o.Shard.IsZero() {
			labels["shard"] = o.Shard.String()
		}
		mf := metrics.NewFile(o.MetricsFile, 0, labels)
		if o.MetricsAddr != "" {
			mctx, stopMetrics := context.WithCancel(ctx)
			defer stopMetrics()
			if _, err := mf.Serve(mctx, o.MetricsAddr); err != nil {
				return &usageError{err.Error()} // it names the flag and the address
			}
		}
		opts.Observers = append(opts.Observers, mf)
		defer func() {
			if merr := mf.Err(); merr != nil && err == nil {
				if logger != nil {
					logger.Warn("writing the metrics file", "error", merr.Error())
				} else {
					fmt.Fprintf(o.Err, "bulkenroll: writing the metrics file: %v\n", merr)
				}
			}
		}()
	}

	importing.Store(true)
	defer importing.Store(false)
	var sub importer.Submitter
	if client != nil {
		sub = client
	}
	sum, runErr := importer.Run(ctx, rd, st, sub, opts)
	if jsonLog && runErr != nil {
		// The summary record holds the error: standard error stays one
		// JSON object a line.
		defer func() { err = reported{err} }()
	}
	if o.RateAuto && st != nil && !o.DryRun && sum.SustainedQuota > 0 {
		// Only a quota measured as a sustained limit is remembered: a bad
		// night never caps the next run, which starts near it and probes up.
		if err := st.SetLearnedRate(sum.SustainedQuota); err != nil && runErr == nil {
			runErr = err
		}
	}
	if !jsonLog {
		printSummary(o.streams, sum, runErr, o.Rejects, st, o.RateAuto)
	}
	if o.JSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(o.Out, string(b))
	}
	switch {
	case runErr != nil:
		return runErr
	case sum.DryRun && sum.Rejected > 0:
		// A dry run's pending rows are its plan, not rows left undone.
		return errRowsNotDone
	case !sum.DryRun && !sum.OK():
		return errRowsNotDone
	}
	return nil
}

// openRunStore opens the store for a run and checks it (bound to cfg, or
// not bound yet, and holding shard or no shard yet) without writing to it;
// the store is bound by the first answer from Smile ID the run saves (an
// unbound store stays unbound when the run gets none). A dry run opens it
// read-only if it exists (nil if not).
func openRunStore(path string, dry bool, cfg smileid.Config, shard manifest.Shard, product store.Product) (*store.Store, error) {
	if dry {
		st, err := store.Open(path, store.Options{ReadOnly: true})
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if cfg.PartnerID != "" {
			if err := st.CheckBinding(cfg.PartnerID, cfg.BaseURL); err != nil {
				st.Close()
				return nil, err
			}
		}
		if err := st.CheckProduct(product); err != nil {
			st.Close()
			return nil, err
		}
		return st, nil
	}
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	// A check of the whole store (its pages and records) belongs here,
	// before the first write.
	if err := st.BindOnAnswer(cfg.PartnerID, cfg.BaseURL); err != nil {
		st.Close()
		return nil, err
	}
	if err := st.CheckShard(shard.String()); err != nil {
		st.Close()
		return nil, err
	}
	if err := st.CheckProduct(product); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
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
	how := "finished"
	var ae *importer.AccountError
	var fe *smileid.ForeignAnswerError
	var we *store.WriteError
	var oe *importer.OutageError
	switch {
	case errors.Is(runErr, importer.ErrInterrupted):
		how = "interrupted"
	case errors.As(runErr, &oe):
		how = fmt.Sprintf("stopped: Smile ID has not answered since %s (--outage-limit %s)", oe.Since.UTC().Format("2006-01-02 15:04:05 UTC"), oe.Limit)
	case errors.As(runErr, &ae):
		how = "stopped by Smile ID"
	case errors.As(runErr, &fe):
		how = "stopped: the answers are not Smile ID's"
	case errors.As(runErr, &we):
		how = "stopped: the store could not be written"
	case runErr != nil:
		how = "failed"
	}
	fmt.Fprintf(w, "bulkenroll: %s %s in %.1fs\n", head, how, s.Seconds)
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

// shardFrom reads --shard K/N, or --shards N with K from
// $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
func shardFrom(spec string, shards int) (manifest.Shard, error) {
	switch {
	case spec != "" && shards != 0:
		return manifest.Shard{}, usagef("--shard and --shards: give one of them")
	case spec != "":
		sh, err := manifest.ParseShard(spec)
		if err != nil {
			return manifest.Shard{}, usagef("--shard: %v", err)
		}
		return sh, nil
	case shards != 0:
		sh, err := manifest.ShardFromEnv(shards, os.Getenv("JOB_COMPLETION_INDEX"))
		if err != nil {
			return manifest.Shard{}, &usageError{err.Error()} // it names --shards
		}
		return sh, nil
	}
	return manifest.Shard{}, nil
}

// parseWorkers reads --workers: "auto", or a fixed number of requests in flight.
func parseWorkers(v string) (n int, auto bool, err error) {
	if strings.EqualFold(strings.TrimSpace(v), "auto") {
		return 0, true, nil
	}
	n, err = strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 256 {
		return 0, false, usagef("--workers %q: want auto or a number from 1 to 256", v)
	}
	return n, false, nil
}

// parseRate reads --rate: "auto", or a fixed rate (0: no limit).
func parseRate(v string) (rate float64, auto bool, err error) {
	if strings.EqualFold(strings.TrimSpace(v), "auto") {
		return 0, true, nil
	}
	rate, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return 0, false, usagef("--rate %q: want auto, 0 (no limit) or a positive number of requests per second", v)
	}
	return rate, false, nil
}

// rateSummary describes the requests of a run: how many, how many were
// throttled, and the rate and concurrency control's figures, worded as the
// progress line words them (saved: the learned quota was measured as a
// sustained limit and is remembered for the next run).
func rateSummary(s importer.Stats, auto, saved bool) string {
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
		fmt.Fprintf(&b, "; %s (sustained: the next run starts near it)", importer.LearnedText(s.LearnedRate))
	} else if s.LearnedRate > 0 && auto {
		fmt.Fprintf(&b, "; %s (not yet sustained: not saved)", importer.LearnedText(s.LearnedRate))
	} else if s.Rate > 0 {
		fmt.Fprintf(&b, "; rate limit %.1f/s", s.Rate)
	}
	if s.Window > 0 {
		fmt.Fprintf(&b, "; window %d", s.Window)
	}
	if s.Limiter == importer.LimitWorkers {
		b.WriteString("; " + s.Hint())
	}
	return b.String()
}

// dryComparer stands in for the client in a dry run without credentials:
// a dry run sends nothing.
type dryComparer struct{}

// Compare refuses: it is never called.
func (dryComparer) Compare(context.Context, smileid.CompareRequest) (*smileid.CompareResult, error) {
	return nil, errors.New("a dry run sends nothing")
}
