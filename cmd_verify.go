package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer"
	"bulkenroll/importer/ratelimit"
	"bulkenroll/importer/smileid"
	"bulkenroll/importer/verify"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// errNotAllAuthenticated: verify finished, and some users checked did not
// authenticate (or are pending review, or met an error): exit code 1.
var errNotAllAuthenticated = errors.New("some users did not authenticate")

// verifyOptions are the settings of `bulkenroll verify`.
type verifyOptions struct {
	streams
	Cred      credentials
	StorePath string
	Manifest  string
	Selection verify.Selection
	// SeedGiven says --seed was given (otherwise a random seed is drawn and shown).
	SeedGiven bool
	// UsersFile is --users FILE.
	UsersFile   string
	Refresh     bool
	Workers     int
	Rate        float64
	RateAuto    bool
	MaxRate     float64
	Retries     int
	Timeout     time.Duration
	PollTimeout time.Duration
	CallbackURL string
	FixPhotos   bool
	MaxPhoto    int64
	DryRun      bool
	JSON        bool
	NoProgress  bool
	LogFormat   string
	// MetricsFile receives Prometheus metrics during the run.
	MetricsFile string
	// ReportEvery is the time between progress lines (tests shorten it).
	ReportEvery time.Duration
	// PollDelay replaces the 2 s / 4 s polling schedule (tests only).
	PollDelay func(int) time.Duration
	// Transport replaces the HTTP transport (tests only).
	Transport http.RoundTripper
}

func verifyCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check that enrolled users authenticate (SmartSelfie Authentication, job type 2)",
		UsageText: "bulkenroll verify --manifest FILE [--sample N | --all | --users FILE | --refresh] [--seed S] [options]",
		Flags: append(credentialFlags(), storeFlag(),
			&cli.StringFlag{Name: "manifest", Aliases: []string{"m"}, Required: true, Usage: "the CSV manifest `FILE` the users were enrolled from (columns selfie and liveness used when present)"},
			&cli.IntFlag{Name: "sample", Value: verify.DefaultSample, Usage: "check a random sample of `N` enrolled users"},
			&cli.BoolFlag{Name: "all", Usage: "check every enrolled user of the manifest"},
			&cli.StringFlag{Name: "users", Usage: "check the user_ids listed in `FILE` (one a line; blank lines and # comments ignored)"},
			&cli.Uint64Flag{Name: "seed", Usage: "the sample's random seed `S`: the same seed picks the same users"},
			&cli.BoolFlag{Name: "refresh", Usage: "only poll again the jobs left pending review (and continue an unfinished verify)"},
			&cli.DurationFlag{Name: "poll-timeout", Value: 5 * time.Minute, Usage: "how long one job's result is polled for; a job not complete by then is pending review"},
			&cli.StringFlag{Name: "callback-url", Usage: "Smile ID posts each job's final result to `URL`"},
			&cli.IntFlag{Name: "workers", Value: 4, Usage: "users checked at once"},
			&cli.StringFlag{Name: "rate", Value: "auto", Usage: "requests per second: auto (find Smile ID's quota from its 429s, up to --max-rate), a number, or 0 (no limit)"},
			&cli.Float64Flag{Name: "max-rate", Value: 50, Usage: "ceiling of --rate auto, requests per second"},
			&cli.IntFlag{Name: "retries", Value: 5, Usage: "retries of a transient failure"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "time limit of one request"},
			&cli.BoolFlag{Name: "fix-photos", Usage: "convert images Smile ID would refuse to JPEG before sending; the files are not changed"},
			&cli.Int64Flag{Name: "max-photo-bytes", Value: manifest.DefaultMaxPhotoBytes, Usage: "image size limit in bytes"},
			&cli.BoolFlag{Name: "dry-run", Usage: "pick the users and show what would be sent; send nothing, write nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on standard output"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress lines"},
			&cli.StringFlag{Name: "log-format", EnvVars: []string{"BULKENROLL_LOG_FORMAT"}, Value: "text", Usage: "text, or json: one JSON object per line on standard error"},
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus metrics to `FILE` during the verify (textfile collector)"},
		),
		Action: func(c *cli.Context) error {
			rate, auto, err := parseRate(c.String("rate"))
			if err != nil {
				return err
			}
			picks := 0
			for _, f := range []string{"all", "users", "refresh"} {
				if c.IsSet(f) {
					picks++
				}
			}
			if c.IsSet("sample") {
				picks++
			}
			if picks > 1 {
				return usagef("--sample, --all, --users and --refresh: give one of them")
			}
			return runVerify(c.Context, verifyOptions{
				streams: io, Cred: credentialsFrom(c), StorePath: c.String("store"), Manifest: c.String("manifest"),
				Selection: verify.Selection{Sample: c.Int("sample"), Seed: c.Uint64("seed"), All: c.Bool("all")},
				SeedGiven: c.IsSet("seed"), UsersFile: c.String("users"), Refresh: c.Bool("refresh"),
				Workers: c.Int("workers"), Rate: rate, RateAuto: auto, MaxRate: c.Float64("max-rate"),
				Retries: c.Int("retries"), Timeout: c.Duration("timeout"), PollTimeout: c.Duration("poll-timeout"),
				CallbackURL: c.String("callback-url"), FixPhotos: c.Bool("fix-photos"), MaxPhoto: c.Int64("max-photo-bytes"),
				DryRun: c.Bool("dry-run"), JSON: c.Bool("json"), NoProgress: c.Bool("no-progress"), LogFormat: c.String("log-format"),
				MetricsFile: c.String("metrics-file"),
			})
		},
	}
}

// runVerify is `bulkenroll verify`.
func runVerify(ctx context.Context, o verifyOptions) (err error) {
	switch {
	case o.Selection.Sample < 1:
		return usagef("--sample %d: want 1 or more", o.Selection.Sample)
	case o.Workers < 1 || o.Workers > 256:
		return usagef("--workers %d: want 1 to 256", o.Workers)
	case o.PollTimeout <= 0:
		return usagef("--poll-timeout %s: want a positive duration", o.PollTimeout)
	}
	if err := checkSendingFlags(o.RateAuto, o.MaxRate, o.Retries, o.Timeout, o.MaxPhoto, o.LogFormat); err != nil {
		return err
	}
	if o.MetricsFile != "" {
		if err := checkOutputFile("--metrics-file", o.MetricsFile, false); err != nil {
			return err
		}
	}
	if o.UsersFile != "" {
		f, err := os.Open(o.UsersFile)
		if err != nil {
			return usagef("--users: %v", err)
		}
		o.Selection.Users, err = verify.ReadUsers(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if !o.SeedGiven {
		o.Selection.Seed = rand.Uint64() >> 12 // short enough to type back
	}
	// A dry run needs no credentials (it sends nothing); given, they are
	// checked against the store as for a real one.
	var cfg smileid.Config
	var client verify.Client
	if !o.DryRun || o.Cred.given() {
		if cfg, err = o.Cred.config(); err != nil {
			return err
		}
		c, err := smileid.NewClient(cfg, smileid.ClientOptions{Workers: o.Workers, Timeout: o.Timeout,
			Transport: o.Transport, UserAgent: "bulkenroll/" + version})
		if err != nil {
			return err
		}
		client = c
	}
	rd, err := manifest.Open(o.Manifest)
	if err != nil {
		return err
	}
	defer rd.Close()
	st, err := openVerifyStore(o.StorePath, o.DryRun, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	jsonLog := o.LogFormat == "json"
	opts := verify.Options{Selection: o.Selection, Refresh: o.Refresh, Workers: o.Workers, Retries: o.Retries,
		PollTimeout: o.PollTimeout, PollDelay: o.PollDelay, CallbackURL: o.CallbackURL, FixPhotos: o.FixPhotos,
		MaxPhotoBytes: o.MaxPhoto, DryRun: o.DryRun, ReportEvery: o.ReportEvery,
		Gate: ratelimit.New(ratelimit.Config{Fixed: o.Rate, Auto: o.RateAuto && o.Rate <= 0, Max: o.MaxRate, Workers: o.Workers})}
	var logger *slog.Logger
	var obs verify.Observers
	if jsonLog {
		logger = slog.New(slog.NewJSONHandler(o.Err, nil))
		obs = append(obs, verify.NewLogObserver(logger, o.NoProgress))
	} else {
		obs = append(obs, verify.NewTextObserver(o.Err, o.NoProgress))
	}
	if o.MetricsFile != "" && !o.DryRun {
		mf := verify.NewMetricsFile(o.MetricsFile)
		obs = append(obs, mf)
		defer func() {
			if merr := mf.Err(); merr != nil {
				fmt.Fprintf(o.Err, "bulkenroll: %v\n", merr)
			}
		}()
	}
	opts.Observer = obs
	importing.Store(true)
	defer importing.Store(false)
	sum, runErr := verify.Run(ctx, rd, st, client, opts)
	if jsonLog && runErr != nil {
		defer func() { err = reported{err} }()
	}
	tellVerify(o, sum, runErr, logger)
	if o.JSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(o.Out, string(b))
	}
	switch {
	case runErr != nil:
		return runErr
	case !sum.DryRun && !sum.OK():
		return errNotAllAuthenticated
	}
	return nil
}

// openVerifyStore opens the store of an import, which must exist and
// belong to cfg's partner and base URL (when cfg has them): read-only for
// a dry run.
func openVerifyStore(path string, dry bool, cfg smileid.Config) (*store.Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store %s: %w (verify checks the users an import enrolled: pass the import's --store)", path, store.ErrNotFound)
	}
	st, err := store.Open(path, store.Options{ReadOnly: dry})
	if err != nil {
		return nil, err
	}
	if cfg.PartnerID != "" {
		if err := st.CheckBinding(cfg.PartnerID, cfg.BaseURL); err != nil {
			st.Close()
			return nil, err
		}
	}
	// Only backfill enrolls users in Smile ID: a compare store's matches
	// are not enrollments to authenticate against.
	if p, err := st.Product(); err != nil || p != store.Backfill {
		st.Close()
		switch {
		case err != nil:
		case p == "":
			err = fmt.Errorf("store %s: no import has used it yet: verify checks the users an import enrolled", path)
		default:
			err = fmt.Errorf("store %s holds %s results, not enrollments: verify checks the users a backfill import enrolled", path, p)
		}
		return nil, err
	}
	return st, nil
}

// tellVerify tells a person on standard error what verify did (as JSON
// log records with --log-format json).
func tellVerify(o verifyOptions, s verify.Summary, runErr error, logger *slog.Logger) {
	if logger != nil {
		for _, sk := range s.Skipped {
			logger.Warn("skipped", "user_id", sk.UserID, "reason", sk.Reason)
		}
		if s.UsedPhoto {
			logger.Info("note", "text", usedPhotoNote)
		}
		return
	}
	w := o.Err
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "%s: skipped: %s\n", manifest.DisplayID(sk.UserID), sk.Reason)
	}
	if s.UsedPhoto {
		fmt.Fprintf(w, "note: %s\n", usedPhotoNote)
	}
	if s.DryRun {
		fmt.Fprintf(w, "bulkenroll: verify dry run (nothing sent, nothing written): %d users would be checked\n", len(s.Planned))
		for _, p := range s.Planned {
			from := "selfie"
			if p.FromPhoto {
				from = "photo"
			}
			fmt.Fprintf(w, "  %s  %s %s, %d liveness frames\n", manifest.DisplayID(p.UserID), from, p.Selfie, p.Frames)
		}
		return
	}
	how := "finished"
	var ae *importer.AccountError
	var fe *smileid.ForeignAnswerError
	switch {
	case errors.Is(runErr, importer.ErrInterrupted):
		how = "interrupted (the next verify continues it)"
	case errors.As(runErr, &ae):
		how = "stopped by Smile ID: " + runErr.Error()
	case errors.As(runErr, &fe):
		how = "stopped: the answers are not Smile ID's"
	case runErr != nil:
		how = "failed: " + runErr.Error()
	}
	fmt.Fprintf(w, "bulkenroll: verify run %d %s in %.1fs\n", s.RunID, how, s.Seconds)
	if s.Continued {
		fmt.Fprintln(w, "  (continued the last verify run, which had not finished: no new users were picked; run verify again for a new selection)")
	} else if !o.Refresh && o.Selection.Users == nil && !o.Selection.All {
		fmt.Fprintf(w, "  sample    %d users, seed %d (--seed %d picks the same users)\n", o.Selection.Sample, o.Selection.Seed, o.Selection.Seed)
	}
	if s.Refreshed > 0 {
		fmt.Fprintf(w, "  polled again  %d jobs of earlier verify runs (pending review or unfinished)\n", s.Refreshed)
	}
	fmt.Fprintf(w, "  checked            %d\n", s.Checked)
	fmt.Fprintf(w, "  authenticated      %d\n", s.Authenticated)
	fmt.Fprintf(w, "  not authenticated  %d\n", s.NotAuthenticated)
	fmt.Fprintf(w, "  pending review     %d  (polled again by the next verify, or verify --refresh)\n", s.PendingReview)
	fmt.Fprintf(w, "  errors             %d\n", s.Errors)
	if s.Left > 0 {
		fmt.Fprintf(w, "  not finished       %d  (the next verify continues them; nothing is sent twice)\n", s.Left)
	}
	if s.Checked > s.Authenticated {
		fmt.Fprintf(w, "list them with: bulkenroll report --verify --store %s\n", o.StorePath)
	}
}

// usedPhotoNote is said once when a selfie is the enrollment photo itself.
const usedPhotoNote = "the manifest has no selfie for some users, so their enrollment photo is sent as the selfie: this only checks that the enrollment exists and matches its own photo (add a selfie column with a newer photo for a real test)"
