package main

import (
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer"
	"bulkenroll/manifest"
)

// runFlags are the flags of `bulkenroll run`.
func runFlags() []cli.Flag {
	return append(credentialFlags(), storeFlag(),
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
	)
}

// runOptionsFrom reads the flags of `bulkenroll run`; a value that does not
// parse is a usage error naming its flag.
func runOptionsFrom(c *cli.Context, io streams) (runOptions, error) {
	shard, err := shardFrom(c.String("shard"), c.Int("shards"))
	if err != nil {
		return runOptions{}, err
	}
	rate, auto, err := parseRate(c.String("rate"))
	if err != nil {
		return runOptions{}, err
	}
	workers, autoWorkers, err := parseWorkers(c.String("workers"))
	if err != nil {
		return runOptions{}, err
	}
	return runOptions{
		streams:     io,
		Cred:        credentialsFrom(c),
		StorePath:   c.String("store"),
		Manifest:    c.String("manifest"),
		Timeout:     c.Duration("timeout"),
		Rejects:     c.String("rejects"),
		JSON:        c.Bool("json"),
		NoProgress:  c.Bool("no-progress"),
		LogFormat:   c.String("log-format"),
		MetricsFile: c.String("metrics-file"),
		MetricsAddr: c.String("metrics-addr"),
		Product:     c.String("product"),
		Import: importer.Options{
			Compare:       importer.CompareOptions{AllowNewEnroll: c.Bool("allow-new-enroll"), CallbackURL: c.String("callback-url")},
			Shard:         shard,
			Workers:       workers,
			AutoWorkers:   autoWorkers,
			MaxWorkers:    c.Int("max-workers"),
			OutageLimit:   c.Duration("outage-limit"),
			ThrottleLimit: c.Duration("throttle-limit"),
			Rate:          rate,
			RateAuto:      auto,
			MaxRate:       c.Float64("max-rate"),
			FixPhotos:     c.Bool("fix-photos"),
			Retries:       c.Int("retries"),
			DryRun:        c.Bool("dry-run"),
			RetryRejected: c.Bool("retry-rejected"),
			MaxPhotoBytes: c.Int64("max-photo-bytes"),
		},
	}, nil
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
