package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
)

// sandboxOptions are the settings of `bulkenroll sandbox`.
type sandboxOptions struct {
	streams
	Cred    credentials
	Addr    string
	Options sandbox.Options
}

func sandboxCommand(io streams) *cli.Command {
	return &cli.Command{
		Name:  "sandbox",
		Usage: "run a local emulator of POST /v1/backfill_users, SmartSelfie Authentication and SmartSelfie Compare for rehearsals and tests",
		UsageText: "bulkenroll sandbox [--addr 127.0.0.1:8080] [--latency D] [--fail-rate F] [--throttle-rate F] [--quota N] [--auth-delay D] [--compare-reject-rate F] ...\n" +
			"   accepts the credentials in SMILE_PARTNER_ID and SMILE_API_KEY (or the key file);\n" +
			"   POST /sandbox/control (loopback only) changes the quota, latency, fault rates or starts an outage while it serves",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "partner-id", EnvVars: []string{"SMILE_PARTNER_ID"}, Usage: "partner ID the emulator accepts"},
			&cli.StringFlag{Name: "api-key-file", EnvVars: []string{"SMILE_API_KEY_FILE"}, Usage: "read the API key from `FILE` (otherwise from $SMILE_API_KEY)"},
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen `ADDRESS` (port 0 picks a free port)"},
			&cli.DurationFlag{Name: "latency", Usage: "delay every answer by `D`"},
			&cli.Float64Flag{Name: "fail-rate", Usage: "fraction of requests answered 500 / 2201"},
			&cli.Float64Flag{Name: "throttle-rate", Usage: "fraction of requests answered 429 with Retry-After"},
			&cli.DurationFlag{Name: "retry-after", Value: time.Second, Usage: "Retry-After of throttled answers"},
			&cli.Float64Flag{Name: "drop-before-rate", Usage: "fraction of connections closed with no answer, before enrolling"},
			&cli.Float64Flag{Name: "drop-after-rate", Usage: "fraction of connections closed with no answer, after enrolling"},
			&cli.StringFlag{Name: "refuse", Usage: "answer every request with account-level `CODE` 2205, 2214 or 2220"},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the fault dice"},
			&cli.Float64Flag{Name: "quota", Usage: "answer 429 above `N` requests per second (0: no quota), like a rate-limited API"},
			&cli.IntFlag{Name: "quota-burst", Usage: "size of the quota's token bucket (default max(1, N/10))"},
			&cli.DurationFlag{Name: "latency-jitter", Usage: "add to --latency a random delay from 0 to `D` (--latency 1s --latency-jitter 2s: answers of 1-3 s)"},
			&cli.DurationFlag{Name: "down-after", Usage: "start an outage `D` after the sandbox starts (with --down-for)"},
			&cli.DurationFlag{Name: "down-for", Usage: "length of the outage: every request then gets --down-answer (once; 0: no outage)"},
			&cli.StringFlag{Name: "down-answer", Value: "reset", Usage: "answer during an outage: reset (connection reset) or 503 (a load balancer's page)"},
			&cli.IntFlag{Name: "throttle-first", Usage: "answer 429 to the first `N` requests of every user_id"},
			&cli.DurationFlag{Name: "auth-delay", Value: 2 * time.Second, Usage: "SmartSelfie Authentication: a job stays incomplete (job_complete false) for `D` after its zip arrives"},
			&cli.Float64Flag{Name: "auth-reject-rate", Usage: "fraction of authentication jobs of enrolled users that complete with job_success false"},
			&cli.StringSliceFlag{Name: "auth-reject-users", Usage: "user IDs (comma-separated, or the flag repeated) whose authentication jobs complete with job_success false"},
			&cli.Float64Flag{Name: "compare-reject-rate", Usage: "fraction of users whose SmartSelfie Compare answers 0841 No Match"},
			&cli.StringSliceFlag{Name: "compare-reject-users", Usage: "user_ids whose SmartSelfie Compare answers 0841 No Match (comma-separated or repeated)"},
		},
		Action: func(c *cli.Context) error {
			return runSandbox(c.Context, sandboxOptions{
				streams: io,
				Cred:    credentials{PartnerID: c.String("partner-id"), APIKeyFile: c.String("api-key-file")},
				Addr:    c.String("addr"),
				Options: sandbox.Options{
					Latency: c.Duration("latency"), FailRate: c.Float64("fail-rate"),
					ThrottleRate: c.Float64("throttle-rate"), RetryAfter: c.Duration("retry-after"),
					DropBeforeRate: c.Float64("drop-before-rate"), DropAfterRate: c.Float64("drop-after-rate"),
					Refuse: c.String("refuse"), Seed: c.Int64("seed"),
					Quota: c.Float64("quota"), QuotaBurst: c.Int("quota-burst"),
					LatencyJitter: c.Duration("latency-jitter"),
					DownAfter:     c.Duration("down-after"), DownFor: c.Duration("down-for"),
					DownAnswer: c.String("down-answer"), ThrottleFirst: c.Int("throttle-first"),
					AuthDelay: c.Duration("auth-delay"), AuthRejectRate: c.Float64("auth-reject-rate"),
					AuthRejectUsers:   c.StringSlice("auth-reject-users"),
					CompareRejectRate: c.Float64("compare-reject-rate"), CompareRejectUsers: c.StringSlice("compare-reject-users"),
				},
			})
		},
	}
}

// runSandbox is `bulkenroll sandbox`: it serves until interrupted.
func runSandbox(ctx context.Context, o sandboxOptions) error {
	key, err := o.Cred.apiKey()
	if err != nil {
		return err
	}
	if o.Cred.PartnerID == "" || key == "" {
		return fmt.Errorf("%w: the sandbox needs the credentials it accepts: set SMILE_PARTNER_ID and SMILE_API_KEY (or SMILE_API_KEY_FILE)", smileid.ErrConfig)
	}
	opts := o.Options
	opts.PartnerID, opts.APIKey = o.Cred.PartnerID, string(key)
	if err := sandbox.Run(ctx, o.Addr, opts, o.Out); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}
