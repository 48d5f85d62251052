//go:build unix

package main

// Helpers of the end-to-end tests (e2e_test.go, crash_test.go and friends):
// they build the real binary once, start `bulkenroll sandbox` as a
// subprocess on loopback, run commands with a controlled environment (never
// the caller's real credentials), and read the sandbox's own record of what
// it did. Every helper is named e2e... so that other test files of package
// main cannot collide with them.
//
// BULKENROLL_E2E_TIMING=1 logs how long every command and sandbox took;
// BULKENROLL_E2E_SEED replays the random choices of a test that logs its seed.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/testkit"
)

// Credentials of the test partner (testkit's). They are made up; a real key
// in the caller's environment is never passed on.
const (
	e2ePartner = testkit.Partner
	e2eKey     = testkit.APIKey
)

// e2eHang is how long any one command may take before the test calls it a
// hang. It is a guard, not a performance bound.
const e2eHang = testkit.Hang

// e2eBinary builds the bulkenroll binary once per test process (with the
// race detector under -race) and returns its path.
func e2eBinary(t testing.TB) string {
	t.Helper()
	return testkit.Binary(t, ".")
}

// e2ePlainBinary is e2eBinary without the race detector. The tests run
// report and status hundreds of times, and the sandbox behind every run:
// read-only commands and a test fixture (whose own tests run under -race),
// where a race build costs several times the CPU and finds little. Runs,
// validate and the commands a test is about use e2eBinary.
func e2ePlainBinary(t testing.TB) string {
	t.Helper()
	return testkit.PlainBinary(t, ".")
}

// e2eResult is how a command ended; e2eProc is a command running in the
// background.
type (
	e2eResult = testkit.Result
	e2eProc   = testkit.Proc
)

// e2eCheckSane fails the test if a command panicked, crashed or raced.
func e2eCheckSane(t testing.TB, r e2eResult) {
	t.Helper()
	testkit.CheckSane(t, r)
}

// e2eCLI runs bulkenroll commands with a controlled environment.
type e2eCLI struct {
	t     testing.TB
	bin   string
	plain string // bin without the race detector, for report and status
	// Dir is the working folder of the commands (a temporary folder).
	Dir string
	// Env holds the variables passed to the commands, and nothing else.
	Env map[string]string
}

// e2eNewCLI returns a CLI whose commands run in a new temporary folder with
// the test credentials, the given base URL (none if empty) and a store in
// that folder.
func e2eNewCLI(t testing.TB, baseURL string) *e2eCLI {
	t.Helper()
	dir := t.TempDir()
	c := &e2eCLI{t: t, bin: e2eBinary(t), plain: e2ePlainBinary(t), Dir: dir, Env: map[string]string{
		"SMILE_PARTNER_ID": e2ePartner,
		"SMILE_API_KEY":    e2eKey,
		"BULKENROLL_STORE": filepath.Join(dir, "store.db"),
		"HOME":             dir,
		"PATH":             "/usr/bin:/bin",
		"GORACE":           "halt_on_error=1 atexit_sleep_ms=50",
	}}
	if baseURL != "" {
		c.Env["SMILE_BASE_URL"] = baseURL
	}
	return c
}

// Store is the store file the commands use.
func (c *e2eCLI) Store() string { return c.Env["BULKENROLL_STORE"] }

func (c *e2eCLI) environ() []string {
	env := make([]string, 0, len(c.Env))
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// Start starts bulkenroll with args in the background.
func (c *e2eCLI) Start(args ...string) *e2eProc {
	return c.StartStdin(nil, args...)
}

// StartStdin is Start with standard input read from stdin (nil: none).
// report and status run the binary built without the race detector.
func (c *e2eCLI) StartStdin(stdin io.Reader, args ...string) *e2eProc {
	c.t.Helper()
	bin := c.bin
	if len(args) > 0 && (args[0] == "report" || args[0] == "status") {
		bin = c.plain
		if bin == "" { // a CLI made without e2eNewCLI
			bin = e2ePlainBinary(c.t)
		}
	}
	return c.StartProgram(bin, stdin, args...)
}

// StartProgram starts another program (a shell, say) with the commands'
// folder and environment.
func (c *e2eCLI) StartProgram(path string, stdin io.Reader, args ...string) *e2eProc {
	c.t.Helper()
	return testkit.Start(c.t, testkit.Cmd{Path: path, Args: args, Dir: c.Dir, Env: c.environ(), Stdin: stdin})
}

// Run runs bulkenroll with args and returns how it ended. A command that
// takes longer than e2eHang fails the test as a hang.
func (c *e2eCLI) Run(args ...string) e2eResult {
	c.t.Helper()
	return c.Start(args...).Wait()
}

// RunStdin is Run with stdin as standard input.
func (c *e2eCLI) RunStdin(stdin string, args ...string) e2eResult {
	c.t.Helper()
	return c.StartStdin(strings.NewReader(stdin), args...).Wait()
}

// e2eWantCode fails the test unless the command exited with code.
func e2eWantCode(t testing.TB, r e2eResult, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("want exit %d, got:\n%s", code, r)
	}
}

// e2eWaitUntil polls cond every 10ms until it holds, failing the test after
// limit.
func e2eWaitUntil(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- the sandbox ---

// e2eSandbox is a `bulkenroll sandbox` process.
type e2eSandbox = testkit.SandboxProc

// e2eStartSandbox starts the sandbox accepting the test credentials, with
// extra flags (--latency 50ms, ...).
func e2eStartSandbox(t testing.TB, flags ...string) *e2eSandbox {
	t.Helper()
	return e2eStartSandboxKey(t, e2ePartner, e2eKey, flags...)
}

// e2eStartSandboxKey starts the sandbox accepting partner and key.
func e2eStartSandboxKey(t testing.TB, partner, key string, flags ...string) *e2eSandbox {
	t.Helper()
	return testkit.StartSandbox(t, e2ePlainBinary(t), partner, key, flags...)
}

// e2eWantEnrolledOnce fails the test unless the sandbox enrolled exactly the
// users ids, each once, and made no other enrollment.
func e2eWantEnrolledOnce(t testing.TB, st sandbox.State, ids []string) {
	t.Helper()
	if len(st.Enrolled) != len(ids) {
		t.Errorf("the sandbox enrolled %d users, want %d", len(st.Enrolled), len(ids))
	}
	for _, id := range ids {
		if n := st.Enrolled[id]; n != 1 {
			t.Errorf("the sandbox enrolled %q %d times, want once", id, n)
		}
	}
	if st.Stats.Enrolled != len(ids) {
		t.Errorf("the sandbox made %d enrollments, want %d", st.Stats.Enrolled, len(ids))
	}
}

// --- a delaying proxy ---

// e2eDelayProxy forwards to a server and, while Delay is set, holds each
// answer back that long after the server has given it: the server has done
// the work, the client waits (a stalled network or load balancer).
type e2eDelayProxy struct {
	URL   string
	delay atomic.Int64
}

// SetDelay sets the delay of the answers that follow.
func (p *e2eDelayProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

func e2eNewDelayProxy(t testing.TB, target string) *e2eDelayProxy {
	t.Helper()
	p := &e2eDelayProxy{}
	rp := testkit.NewProxy(t, target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if d := time.Duration(p.delay.Load()); d > 0 {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-resp.Request.Context().Done():
				return resp.Request.Context().Err()
			}
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(func() {
		p.SetDelay(0)
		srv.CloseClientConnections()
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

// --- photos and manifests ---

// e2eJPEG returns a small real JPEG whose pixels depend on n.
func e2eJPEG(t testing.TB, n int) []byte { return testkit.Photo(t, "jpeg", n) }

// e2ePNG returns a small real PNG whose pixels depend on n.
func e2ePNG(t testing.TB, n int) []byte { return testkit.Photo(t, "png", n) }

// e2eImage is the image e2eJPEG and e2ePNG encode.
func e2eImage(n int) image.Image { return testkit.Image(n) }

// e2eWriteFile writes data to path, creating its folder.
func e2eWriteFile(t testing.TB, path string, data []byte) { testkit.WriteFile(t, path, data) }

// e2eWriteCSV writes records (the header first) as a CSV file at path.
func e2eWriteCSV(t testing.TB, path string, records [][]string) { testkit.WriteCSV(t, path, records) }

// e2eManifest writes, in dir, n good rows with photos/ID.jpg or .png (every
// third a PNG) and returns the manifest's path and the user IDs in order.
func e2eManifest(t testing.TB, dir, prefix string, n int) (string, []string) {
	t.Helper()
	records := [][]string{{"user_id", "user_created_at", "photo"}}
	ids := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i+1)
		ids[i] = id
		photo := "photos/" + id + ".jpg"
		data := e2eJPEG(t, i)
		if i%3 == 2 {
			photo = "photos/" + id + ".png"
			data = e2ePNG(t, i)
		}
		e2eWriteFile(t, filepath.Join(dir, photo), data)
		records = append(records, []string{id, "2021-08-12T15:14:43Z", photo})
	}
	path := filepath.Join(dir, prefix+".csv")
	e2eWriteCSV(t, path, records)
	return path, ids
}

// --- the command's outputs ---

// e2eSummary is the --json summary of a run.
type e2eSummary struct {
	Rows     int     `json:"rows"`
	Enrolled int     `json:"enrolled"`
	Skipped  int     `json:"skipped"`
	Rejected int     `json:"rejected"`
	Failed   int     `json:"failed"`
	Pending  int     `json:"pending"`
	Seconds  float64 `json:"seconds"`
}

// e2eParseSummary reads the --json summary: the one line of standard output.
func e2eParseSummary(t testing.TB, r e2eResult) e2eSummary {
	t.Helper()
	out := strings.TrimSpace(r.Stdout)
	if out == "" || strings.Contains(out, "\n") {
		t.Fatalf("want one JSON line on standard output:\n%s", r)
	}
	var s e2eSummary
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("summary %q: %v\n%s", out, err, r)
	}
	if s.Rows != s.Enrolled+s.Skipped+s.Rejected+s.Failed+s.Pending {
		t.Errorf("summary %+v: rows is not the sum of the states", s)
	}
	return s
}

// e2eWantSummary fails the test unless the counts of got are want's
// (seconds ignored).
func e2eWantSummary(t testing.TB, got, want e2eSummary) {
	t.Helper()
	got.Seconds, want.Seconds = 0, 0
	if got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
}

// e2eReport runs `report --format jsonl` (with more flags) and returns its
// records.
func e2eReport(t testing.TB, c *e2eCLI, flags ...string) []reportRecord {
	t.Helper()
	r := c.Run(append([]string{"report", "--format", "jsonl"}, flags...)...)
	e2eWantCode(t, r, 0)
	var recs []reportRecord
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	for {
		var rec reportRecord
		err := dec.Decode(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report: %v\n%s", err, r)
		}
		recs = append(recs, rec)
	}
	return recs
}

// e2eReportByUser is e2eReport keyed by user_id; it fails the test if a
// user appears twice.
func e2eReportByUser(t testing.TB, c *e2eCLI, flags ...string) map[string]reportRecord {
	t.Helper()
	m := map[string]reportRecord{}
	for _, rec := range e2eReport(t, c, flags...) {
		if _, dup := m[rec.UserID]; dup {
			t.Fatalf("report lists user %q twice", rec.UserID)
		}
		m[rec.UserID] = rec
	}
	return m
}

// e2eWantAllEnrolled fails the test unless the report lists exactly ids,
// every one enrolled.
func e2eWantAllEnrolled(t testing.TB, c *e2eCLI, ids []string) {
	t.Helper()
	recs := e2eReportByUser(t, c)
	if len(recs) != len(ids) {
		t.Errorf("report lists %d records, want %d", len(recs), len(ids))
	}
	for _, id := range ids {
		rec, ok := recs[id]
		switch {
		case !ok:
			t.Errorf("report: %s missing", id)
		case rec.State != "enrolled":
			t.Errorf("report: %s is %s (%s), want enrolled", id, rec.State, rec.Error)
		}
	}
}

// e2eSHA256 returns the hex SHA-256 of the file at path.
func e2eSHA256(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}
