package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"rows not done", errRowsNotDone, 1},
		{"rows not done, wrapped", fmt.Errorf("run: %w", errRowsNotDone), 1},
		{"interrupted", importer.ErrInterrupted, 130},
		{"context canceled", fmt.Errorf("validate: %w", context.Canceled), 130},
		{"usage", usagef("--workers 0: want 1 to 256"), 2},
		{"config", fmt.Errorf("%w: partner ID missing", smileid.ErrConfig), 2},
		{"store locked", fmt.Errorf("store x: %w", store.ErrLocked), 2},
		{"store mismatch", fmt.Errorf("store x: %w", store.ErrMismatch), 2},
		{"store of another product", &store.ProductMismatchError{Path: "x", Have: store.Compare, Want: store.Backfill}, 2},
		{"account refused", &importer.AccountError{API: &smileid.APIError{Status: 401, Code: "2205", Text: "Unauthorized"}}, 2},
		{"header", &manifest.HeaderError{Reason: "missing required column \"photo\""}, 2},
		{"outage past --outage-limit", fmt.Errorf("run: %w", &importer.OutageError{Limit: 15 * time.Minute}), 1},
		{"verify: some users not authenticated", errNotAllAuthenticated, 1},
		{"anything else", errors.New("disk on fire"), 2},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", c.name, c.err, got, c.want)
		}
	}
}

// TestAppUsageErrors runs the app with bad command lines: each must come
// back as an error (exit 2), never as an os.Exit inside urfave/cli.
func TestAppUsageErrors(t *testing.T) {
	cases := [][]string{
		{"bulkenroll", "run"},                               // --manifest is required
		{"bulkenroll", "run", "--manifest", "x", "--bogus"}, // unknown flag
		{"bulkenroll", "report", "--format", "xml"},
		{"bulkenroll", "report", "--state", "happy"},
		{"bulkenroll", "validate", "--manifest", "x", "--max-photo-bytes", "0"},
		{"bulkenroll", "nonsense"},
		{"bulkenroll", "run", "--manifest", "x", "--workers", "0"},
		{"bulkenroll", "run", "--manifest", "x", "--workers", "257"},
		{"bulkenroll", "run", "--manifest", "x", "--workers", "many"},
		{"bulkenroll", "run", "--manifest", "x", "--max-workers", "0"},
		{"bulkenroll", "run", "--manifest", "x", "--outage-limit", "0s"},
		{"bulkenroll", "run", "--manifest", "x", "--throttle-limit", "-1s"},
		{"bulkenroll", "verify"}, // --manifest is required
		{"bulkenroll", "verify", "--manifest", "x", "--sample", "0"},
		{"bulkenroll", "verify", "--manifest", "x", "--sample", "3", "--all"},
		{"bulkenroll", "verify", "--manifest", "x", "--users", "u.txt", "--refresh"},
		{"bulkenroll", "verify", "--manifest", "x", "--poll-timeout", "0s"},
		{"bulkenroll", "verify", "--manifest", "x", "--rate", "fast"},
		{"bulkenroll", "verify", "--manifest", "x", "stray"},
		{"bulkenroll", "report", "--verify", "--state", "enrolled"},
	}
	for _, args := range cases {
		var out, errOut bytes.Buffer
		err := newApp(streams{In: strings.NewReader(""), Out: &out, Err: &errOut}).RunContext(context.Background(), args)
		if code := exitCode(err); code != 2 {
			t.Errorf("%q: exit %d (err %v), want 2", args[1:], code, err)
		}
	}
}

func TestRunRejectsBadFlagValues(t *testing.T) {
	t.Setenv("SMILE_PARTNER_ID", "p")
	t.Setenv("SMILE_API_KEY", "k")
	base := runOptions{Manifest: "samples/manifest.csv", Timeout: 1e9,
		Import: importer.Options{Workers: 4, Rate: 10, Retries: 5, MaxPhotoBytes: 1}}
	cases := map[string]func(*runOptions){
		"workers 0":      func(o *runOptions) { o.Import.Workers = 0 },
		"rate negative":  func(o *runOptions) { o.Import.Rate = -1 },
		"retries < 0":    func(o *runOptions) { o.Import.Retries = -1 },
		"timeout 0":      func(o *runOptions) { o.Timeout = 0 },
		"photo limit 0":  func(o *runOptions) { o.Import.MaxPhotoBytes = 0 },
		"workers 100000": func(o *runOptions) { o.Import.Workers = 100000 },
	}
	for name, mut := range cases {
		o := base
		o.streams = streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
		o.StorePath = t.TempDir() + "/s.db"
		mut(&o)
		var ue *usageError
		if err := runImport(context.Background(), o); !errors.As(err, &ue) {
			t.Errorf("%s: err = %v, want a usage error", name, err)
		}
	}
}

func TestValidateSamples(t *testing.T) {
	var out bytes.Buffer
	err := validateManifest(context.Background(), validateOptions{streams: streams{Out: &out, Err: &out},
		Manifest: "samples/manifest.csv", MaxPhotoBytes: manifest.DefaultMaxPhotoBytes})
	if err != nil {
		t.Fatalf("samples/manifest.csv: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "8 rows: 8 valid, 0 invalid") {
		t.Errorf("output %q lacks the count line", out.String())
	}

	out.Reset()
	err = validateManifest(context.Background(), validateOptions{streams: streams{Out: &out, Err: &out},
		Manifest: "samples/bad/manifest.csv", MaxPhotoBytes: manifest.DefaultMaxPhotoBytes, JSON: true})
	if !errors.Is(err, errRowsNotDone) {
		t.Fatalf("samples/bad: err = %v, want errRowsNotDone", err)
	}
	s := out.String()
	for _, want := range []string{`"field":"user_id"`, `"reason":"user_id: duplicate of line 2"`, `"invalid":`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON output lacks %s:\n%s", want, s)
		}
	}
}

// TestParseWorkers reads --workers: auto (any case) or 1 to 256.
func TestParseWorkers(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		auto bool
		ok   bool
	}{{"auto", 0, true, true}, {" AUTO ", 0, true, true}, {"1", 1, false, true}, {"256", 256, false, true},
		{"0", 0, false, false}, {"257", 0, false, false}, {"-3", 0, false, false}, {"4.5", 0, false, false}, {"", 0, false, false}} {
		n, auto, err := parseWorkers(c.in)
		if (err == nil) != c.ok || n != c.n || auto != c.auto {
			t.Errorf("parseWorkers(%q) = %d, %v, %v", c.in, n, auto, err)
		}
		var ue *usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("parseWorkers(%q): %T is not a usage error", c.in, err)
		}
	}
}
