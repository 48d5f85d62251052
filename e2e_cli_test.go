//go:build unix

package main

// End-to-end tests of the command line's rules (../shared/cli-contract.md,
// "Command-line rules"): stray words and usage errors, output paths checked
// before the first request, pure JSON logs, manifests that are not regular
// files, and secrets in photo URLs.

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bulkenroll/store"
)

// e2eWantUsageError fails the test unless r is a usage error: exit 2,
// nothing on standard output, a short message on standard error that
// contains every one of want.
func e2eWantUsageError(t testing.TB, r e2eResult, want ...string) {
	t.Helper()
	e2eWantCode(t, r, 2)
	if r.Stdout != "" {
		t.Errorf("a usage error printed on standard output:\n%s", r)
	}
	if n := strings.Count(r.Stderr, "\n"); n == 0 || n > 4 {
		t.Errorf("standard error has %d lines, want 1 to 4 (a short usage, not the whole help):\n%s", n, r)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("standard error lacks %q:\n%s", w, r)
		}
	}
}

// e2eWantJSONLines fails the test unless s is JSON lines (opsJSONLines):
// at least one, every one an object, no blank line, a newline at the end.
func e2eWantJSONLines(t *testing.T, what, s string) []map[string]any {
	t.Helper()
	if s == "" || !strings.HasSuffix(s, "\n") {
		t.Errorf("%s: want JSON lines ending in a newline, got %q", what, s)
		return nil
	}
	return opsJSONLines(t, s)
}

// TestE2EStrayWordSendsNothing: a positional word anywhere in a command line
// is a usage error before anything is read, sent or written; in particular
// the flags after it are not silently dropped (`run ... now --dry-run` once
// sent real requests).
func TestE2EStrayWordSendsNothing(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "stray", 4)
	store := filepath.Join(c.Dir, "s.db")
	data, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, filepath.Join(c.Dir, "my manifest.csv"), data)

	// The before-stop hook's case, with nothing listening at the base URL.
	r := c.Run("run", "--dry-run", "--base-url", "http://127.0.0.1:9", "--manifest", m, "--store", store, "stray-word")
	e2eWantUsageError(t, r, `"stray-word"`, "usage: bulkenroll run", "bulkenroll run --help")

	for _, args := range [][]string{
		{"run", "-m", m, "--store", store, "now", "--dry-run"},
		{"run", "-m", m, "--store", store, "now", "--dry-run", "--json"},
		{"run", "--store", store, "--manifest", filepath.Join(c.Dir, "my"), "manifest.csv"}, // an unquoted path with a space
		{"run", "--store", store, "--manifest", m, "--", "--dry-run"},
	} {
		r := c.Run(args...)
		e2eWantUsageError(t, r, "unexpected argument", "usage: bulkenroll run")
	}
	if !strings.Contains(c.Run("run", "-m", m, "now", "--dry-run").Stderr, `"now"`) {
		t.Errorf("the message does not name the stray word")
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("command lines with stray words sent %d requests, want 0", n)
	}
	for _, p := range []string{store, c.Store()} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused command line made the store %s (stat: %v)", p, err)
		}
	}

	// Every command.
	for _, args := range [][]string{
		{"validate", "--manifest", m, "extra"},
		{"status", "extra"},
		{"status", "--json", "extra"},
		{"report", "--format", "jsonl", "extra"},
		{"sandbox", "--addr", "127.0.0.1:0", "extra"},
		{"run", "help"},
	} {
		e2eWantUsageError(t, c.Run(args...), `"`+args[len(args)-1]+`"`, "bulkenroll "+args[0]+" --help")
	}
}

// TestE2EUsageErrors: unknown commands and flags, missing flags and bad
// values are short messages on standard error, exit 2; standard output
// carries nothing; --help is still help on standard output.
func TestE2EUsageErrors(t *testing.T) {
	t.Parallel()
	c := e2eNewCLI(t, "")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "run, validate, status, report, verify, sandbox"}},
		{[]string{"rnu", "--manifest", "m.csv"}, []string{`unknown command "rnu"`, "did you mean run?"}},
		{[]string{"vaildate"}, []string{"did you mean validate?"}},
		{[]string{}, []string{"no command given", "bulkenroll --help"}},
		{[]string{"--bogus"}, []string{"unknown flag --bogus"}},
		{[]string{"run"}, []string{"--manifest is required", "usage: bulkenroll run"}},
		{[]string{"run", "--manifest", ""}, []string{"--manifest is empty"}},
		{[]string{"run", "--manifest", "m.csv", "--dyr-run"}, []string{"unknown flag --dyr-run", "did you mean --dry-run?", "bulkenroll run --help"}},
		{[]string{"run", "--manifest", "m.csv", "--workers", "many"}, []string{`--workers "many": want auto or a number from 1 to 256`}},
		{[]string{"run", "--manifest", "m.csv", "--workers", "0"}, []string{`--workers "0": want auto`}},
		{[]string{"run", "--manifest"}, []string{"flag needs an argument: --manifest"}},
		{[]string{"report", "--format", "xml"}, []string{`--format "xml"`, "bulkenroll report --help"}},
		{[]string{"validate", "-x"}, []string{"unknown flag -x"}},
	}
	for _, tc := range cases {
		e2eWantUsageError(t, c.Run(tc.args...), tc.want...)
	}

	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"run", "-h", "now"}, {"report", "--help"}} {
		r := c.Run(args...)
		e2eWantCode(t, r, 0)
		if !strings.Contains(r.Stdout, "USAGE:") || r.Stderr != "" {
			t.Errorf("help was asked for, want it on standard output only:\n%s", r)
		}
	}
}

// TestE2EOutputPathsChecked: --metrics-file and --rejects in a folder that
// does not exist (or that cannot be written), a folder, or a read-only
// rejects file stop the run before anything is read, sent or written (no
// store is made), exit 2, naming the path.
func TestE2EOutputPathsChecked(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "out", 3)
	missing := filepath.Join(c.Dir, "no-such-folder", "x")
	locked := filepath.Join(c.Dir, "locked")
	if err := os.Mkdir(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"--metrics-file", missing},
		{"--rejects", missing},
		{"--metrics-file", c.Dir}, // a folder
	}
	if os.Geteuid() != 0 { // root writes anywhere
		readOnly := filepath.Join(c.Dir, "rejects.csv")
		e2eWriteFile(t, readOnly, []byte("an older file\n"))
		if err := os.Chmod(readOnly, 0o400); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, []string{"--metrics-file", filepath.Join(locked, "m.prom")},
			[]string{"--rejects", filepath.Join(locked, "r.csv")}, []string{"--rejects", readOnly})
	}
	for _, flags := range cases {
		r := c.Run(append([]string{"run", "--manifest", m, "--no-progress", "--json"}, flags...)...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, flags[0]+" "+flags[1]) && !strings.Contains(r.Stderr, flags[1]) {
			t.Errorf("%s: the message does not name the path:\n%s", flags[0], r)
		}
		if r.Stdout != "" {
			t.Errorf("%s: standard output: %q", flags[0], r.Stdout)
		}
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("runs with unwritable output paths sent %d requests, want 0", n)
	}
	if _, err := os.Stat(c.Store()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a run refused for its output paths made the store (stat: %v)", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(c.Dir, ".bulkenroll-check-*")); len(leftovers) != 0 {
		t.Errorf("the check left files behind: %v", leftovers)
	}

	// A writable metrics file is written, and the check leaves nothing.
	prom := filepath.Join(c.Dir, "m.prom")
	r := c.Run("run", "--manifest", m, "--no-progress", "--metrics-file", prom, "--rate", "0")
	e2eWantCode(t, r, 0)
	if _, err := os.Stat(prom); err != nil {
		t.Errorf("metrics file: %v", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(c.Dir, ".bulkenroll-check-*")); len(leftovers) != 0 {
		t.Errorf("the check left files behind: %v", leftovers)
	}
}

// TestE2EJSONLogsPure: with --log-format json (or BULKENROLL_LOG_FORMAT),
// every line on standard error is one JSON object: usage errors,
// configuration errors before the run, the messages on a first and a second
// signal, the summary.
func TestE2EJSONLogsPure(t *testing.T) {
	t.Parallel()
	c := e2eNewCLI(t, "http://127.0.0.1:9")
	m, _ := e2eManifest(t, c.Dir, "jsonerr", 2)

	// Errors before the run starts.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		msg  string
	}{
		{nil, []string{"run", "--log-format", "json", "--manifest", m, "now", "--dry-run"}, "usage error"},
		{nil, []string{"run", "--log-format=json", "--manifest", m, "--bogus"}, "usage error"},
		{nil, []string{"run", "--manifest", m, "--log-format", "json", "--workers", "x"}, "usage error"},
		{map[string]string{"BULKENROLL_LOG_FORMAT": "json"}, []string{"run", "--manifest", m, "stray"}, "usage error"},
		{map[string]string{"BULKENROLL_LOG_FORMAT": "json"}, []string{"frobnicate"}, "usage error"},
		{map[string]string{"SMILE_API_KEY": ""}, []string{"run", "--log-format", "json", "--manifest", m}, "error"},
		{nil, []string{"run", "--log-format", "json", "--manifest", filepath.Join(c.Dir, "missing.csv")}, "error"},
		{nil, []string{"run", "--log-format", "json", "--manifest", m, "--metrics-file", filepath.Join(c.Dir, "no", "m.prom")}, "error"},
	} {
		cc := *c
		cc.Env = map[string]string{}
		for k, v := range c.Env {
			cc.Env[k] = v
		}
		for k, v := range tc.env {
			if v == "" {
				delete(cc.Env, k)
			} else {
				cc.Env[k] = v
			}
		}
		r := cc.Run(tc.args...)
		e2eWantCode(t, r, 2)
		recs := e2eWantJSONLines(t, strings.Join(tc.args, " "), r.Stderr)
		if len(recs) != 1 || recs[0]["msg"] != tc.msg || recs[0]["level"] != "ERROR" || recs[0]["error"] == "" {
			t.Errorf("%v: want one ERROR record %q with the error, got:\n%s", tc.args, tc.msg, r.Stderr)
		}
	}

	// A first signal, mid-run.
	sb := e2eStartSandbox(t, "--latency", "200ms")
	c1 := e2eNewCLI(t, sb.URL)
	const rows, workers = 40, 4
	m1, _ := e2eManifest(t, c1.Dir, "jsonsig", rows)
	p := c1.Start("run", "--manifest", m1, "--workers", strconv.Itoa(workers), "--rate", "0", "--log-format", "json")
	e2eWaitUntil(t, 30*time.Second, "requests in flight", func() bool { return sb.State(t).Stats.Requests >= 2*workers })
	p.Signal(syscall.SIGTERM)
	r := p.WaitFor(45 * time.Second)
	e2eWantCode(t, r, 130)
	if r.Stdout != "" {
		t.Errorf("standard output without --json: %q", r.Stdout)
	}
	recs := e2eWantJSONLines(t, "after SIGTERM", r.Stderr)
	var msgs []string
	for _, rec := range recs {
		msgs = append(msgs, rec["msg"].(string))
	}
	joined := strings.Join(msgs, "|")
	if !strings.Contains(joined, "interrupted: finishing requests in flight") || !strings.Contains(joined, "summary") {
		t.Errorf("want the interrupt's record and the summary, got %q", joined)
	}

	// A second signal.
	sb2 := e2eStartSandbox(t)
	px := e2eNewDelayProxy(t, sb2.URL)
	c2 := e2eNewCLI(t, px.URL)
	m2, _ := e2eManifest(t, c2.Dir, "jsonsig2", 20)
	px.SetDelay(30 * time.Second) // longer than the grace: only a second signal ends it soon
	c2.Env["BULKENROLL_LOG_FORMAT"] = "json"
	p2 := c2.Start("run", "--manifest", m2, "--workers", strconv.Itoa(workers), "--rate", "0", "--json")
	e2eWaitUntil(t, 30*time.Second, "requests in flight", func() bool { return sb2.State(t).Stats.Requests >= workers })
	p2.Signal(syscall.SIGINT)
	e2eWaitUntil(t, 30*time.Second, "the first signal's record", func() bool {
		return strings.Contains(p2.Stderr(), "finishing requests in flight")
	})
	p2.Signal(syscall.SIGINT)
	r = p2.WaitFor(10 * time.Second)
	e2eWantCode(t, r, 130)
	recs = e2eWantJSONLines(t, "after a second SIGINT", r.Stderr)
	if last := recs[len(recs)-1]; !strings.Contains(last["msg"].(string), "quitting at once") {
		t.Errorf("the last record is not the second signal's: %v", last)
	}
}

// TestE2EManifestNotRegular: the photo paths of a manifest that is not a
// regular file (/dev/stdin, a named pipe, as with <(psql ...)) are relative
// to the working folder, as with "-"; a row with more fields than the
// header is refused, and the run goes on.
func TestE2EManifestNotRegular(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "pipe", 5) // photos/ID.jpg, relative to c.Dir, the working folder
	data, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	r := c.RunStdin(string(data), "validate", "--manifest", "/dev/stdin")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stdout, "5 rows: 5 valid, 0 invalid") {
		t.Errorf("validate --manifest /dev/stdin:\n%s", r)
	}

	// A named pipe in another folder: its folder is not the photos' base.
	fifo := filepath.Join(c.Dir, "sub", "m.csv")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		f.Write(data)
	}()
	r = c.Run("run", "--manifest", fifo, "--json", "--rate", "0", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 5, Enrolled: 5})
	e2eWantEnrolledOnce(t, sb.State(t), ids)

	// More fields than the header: an unquoted comma in a date.
	wide := filepath.Join(c.Dir, "wide.csv")
	e2eWriteFile(t, wide, []byte("user_id,user_created_at,photo\n"+
		"wide-1,2021-08-12T15:14:43,5Z,photos/"+ids[0]+".jpg\n"+
		"wide-2,\"2021-08-12T15:14:43Z\",photos/"+ids[1]+".jpg\n"))
	r = c.Run("validate", "--manifest", wide)
	e2eWantCode(t, r, 1)
	if !strings.Contains(r.Stdout, "line 2: wide-1: row: 4 fields, the header has 3") || !strings.Contains(r.Stdout, "2 rows: 1 valid, 1 invalid") {
		t.Errorf("validate does not report the row with too many fields:\n%s", r)
	}
	r = c.Run("run", "--manifest", wide, "--json", "--rate", "0", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Enrolled: 1, Rejected: 1})
	recs := e2eReportByUser(t, c)
	if rec := recs["wide-1"]; rec.State != "rejected" || !strings.Contains(rec.Error, "4 fields, the header has 3") {
		t.Errorf("report: wide-1 %+v, want rejected for its 4 fields", rec)
	}
}

// TestE2EPhotoURLSecretsRedacted: a presigned URL's signature and a URL's
// password never reach standard error, the rejects file, the store or
// report; the URL is kept with its path, the secrets named REDACTED. Nor
// does a base URL's password reach an error message.
func TestE2EPhotoURLSecretsRedacted(t *testing.T) {
	t.Parallel()
	photos := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(photos.Close)
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "ok.jpg"), e2eJPEG(t, 1))
	host := strings.TrimPrefix(photos.URL, "http://")
	secrets := []string{"SIGVALUE1234", "CREDVALUE99", "hunter2pw", "TOKVALUE77"}
	presigned := photos.URL + "/bucket/p.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=CREDVALUE99&X-Amz-Signature=SIGVALUE1234"
	withPassword := "http://bob:hunter2pw@" + host + "/q.jpg?token=TOKVALUE77"
	m := filepath.Join(c.Dir, "m.csv")
	e2eWriteCSV(t, m, [][]string{{"user_id", "user_created_at", "photo"},
		{"sec-presigned", "2021-08-12", presigned},
		{"sec-password", "2021-08-12", withPassword},
		{"sec-ok", "2021-08-12", "ok.jpg"},
	})
	wantNone := func(what, s string) {
		t.Helper()
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s contains the secret %q:\n%s", what, secret, s)
			}
		}
	}

	r := c.Run("validate", "--manifest", m)
	e2eWantCode(t, r, 1)
	wantNone("validate's output", r.Stdout+r.Stderr)

	rejects := filepath.Join(c.Dir, "rejects.csv")
	for _, format := range []string{"text", "json"} {
		r = c.Run("run", "--manifest", m, "--json", "--rate", "0", "--no-progress", "--rejects", rejects, "--log-format", format)
		e2eWantCode(t, r, 1)
		wantNone("run's output ("+format+")", r.Stdout+r.Stderr)
	}
	b, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	wantNone("the rejects file", string(b))
	for _, want := range []string{"/bucket/p.jpg?X-Amz-Algorithm=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED",
		"http://REDACTED@" + host + "/q.jpg?token=REDACTED"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the rejects file lacks %q:\n%s", want, b)
		}
	}
	recs := e2eReportByUser(t, c)
	for _, id := range []string{"sec-presigned", "sec-password"} {
		if recs[id].State != "rejected" {
			t.Errorf("report: %s is %+v, want rejected", id, recs[id])
		}
	}
	r = c.Run("report", "--format", "csv")
	e2eWantCode(t, r, 0)
	wantNone("report", r.Stdout)

	// The store's records, field by field, and the file's bytes.
	st, err := store.Open(c.Store(), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = st.Each("", func(rec store.Record) error {
		n++
		j, _ := json.Marshal(rec)
		wantNone("the store's record of "+rec.UserID, string(j))
		return nil
	})
	st.Close()
	if err != nil || n != 3 {
		t.Errorf("store: %d records, %v; want 3", n, err)
	}
	raw, err := os.ReadFile(c.Store())
	if err != nil {
		t.Fatal(err)
	}
	wantNone("the store file", string(raw))

	// A base URL's password.
	for _, base := range []string{"https://bob:hunter2pw@smile.example.com", "http://bob:hunter2pw@smile.example.com",
		"https://bob:hunter2pw@exa mple.com", "https://bob:hunter2pw@smile.example.com/%zz", "bob:hunter2pw@smile.example.com"} {
		cc := e2eNewCLI(t, base)
		r := cc.Run("run", "--manifest", m, "--no-progress")
		e2eWantCode(t, r, 2)
		wantNone("the error for base URL "+base, r.Stdout+r.Stderr)
		if !strings.Contains(r.Stderr, "base URL") {
			t.Errorf("base URL %s: the error does not name the base URL:\n%s", base, r)
		}
	}
}
