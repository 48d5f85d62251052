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
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
)

// Credentials of the test partner. They are made up; a real key in the
// caller's environment is never passed on.
const (
	e2ePartner = "e2e-partner"
	e2eKey     = "e2e-key-not-a-real-one"
)

// e2eHang is how long any one command may take before the test calls it a
// hang. It is a guard, not a performance bound.
const e2eHang = 60 * time.Second

// e2eRace is set by e2e_race_test.go when the tests run under -race; the
// binary is then built with the race detector too.
var e2eRace bool

var e2eBuild struct {
	once sync.Once
	path string
	err  error
}

// e2eBinary builds the bulkenroll binary once per test process and returns
// its path.
func e2eBinary(t testing.TB) string {
	t.Helper()
	e2eBuild.once.Do(func() { e2eBuild.path, e2eBuild.err = e2eBuildBinary() })
	if e2eBuild.err != nil {
		t.Fatalf("building bulkenroll: %v", e2eBuild.err)
	}
	return e2eBuild.path
}

// e2eDirPrefix names the temporary folders the binary is built in; the
// process ID in the name lets a later test process remove the folders of
// processes that are gone (there is no TestMain to clean up at exit, so that
// other test files of package main stay free to define one).
const e2eDirPrefix = "bulkenroll-e2e-"

func e2eBuildBinary() (string, error) {
	e2eRemoveStaleDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", e2eDirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bulkenroll")
	args := []string{"build", "-o", bin}
	if e2eRace {
		args = append(args, "-race")
	}
	args = append(args, ".")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goTool, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SMILE_") && !strings.HasPrefix(kv, "BULKENROLL_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// e2eRemoveStaleDirs removes the build folders of test processes that have
// exited.
func e2eRemoveStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), e2eDirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), e2eDirPrefix)
		pid, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '-'))])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// e2eBuffer is a bytes.Buffer safe for a writer and a reader at once.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// e2eResult is how a command ended.
type e2eResult struct {
	Args    []string
	Stdout  string
	Stderr  string
	Code    int // exit code; -1 when killed by a signal
	Elapsed time.Duration
}

func (r e2eResult) String() string {
	return fmt.Sprintf("bulkenroll %s: exit %d after %s\n--- stdout:\n%s--- stderr:\n%s",
		strings.Join(r.Args, " "), r.Code, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// e2eProc is a command running in the background.
type e2eProc struct {
	t       testing.TB
	cmd     *exec.Cmd
	args    []string
	stdout  *e2eBuffer
	stderr  *e2eBuffer
	start   time.Time
	done    chan struct{}
	elapsed time.Duration
}

// e2eCLI runs bulkenroll commands with a controlled environment.
type e2eCLI struct {
	t   testing.TB
	bin string
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
	c := &e2eCLI{t: t, bin: e2eBinary(t), Dir: dir, Env: map[string]string{
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
func (c *e2eCLI) StartStdin(stdin io.Reader, args ...string) *e2eProc {
	c.t.Helper()
	p := &e2eProc{t: c.t, args: args, stdout: &e2eBuffer{}, stderr: &e2eBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.bin, args...)
	p.cmd.Dir = c.Dir
	p.cmd.Env = c.environ()
	p.cmd.Stdin = stdin
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("starting bulkenroll %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.cmd.Wait()
		p.elapsed = time.Since(p.start)
		close(p.done)
	}()
	c.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
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

// Exited reports whether the process has ended.
func (p *e2eProc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *e2eProc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Stderr is what the process wrote on standard error so far.
func (p *e2eProc) Stderr() string { return p.stderr.String() }

// Wait waits for the process (at most e2eHang) and returns how it ended.
func (p *e2eProc) Wait() e2eResult {
	p.t.Helper()
	return p.WaitFor(e2eHang)
}

// WaitFor waits at most limit for the process to end; a process still
// running then is killed and fails the test as a hang.
func (p *e2eProc) WaitFor(limit time.Duration) e2eResult {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("hang: still running after %s, killed\n%s", limit, p.result())
	}
	r := p.result()
	if os.Getenv("BULKENROLL_E2E_TIMING") != "" {
		p.t.Logf("TIMING %s %v", r.Elapsed, r.Args)
	}
	e2eCheckSane(p.t, r)
	return r
}

func (p *e2eProc) result() e2eResult {
	code := -1
	if p.cmd.ProcessState != nil {
		code = p.cmd.ProcessState.ExitCode()
	}
	return e2eResult{Args: p.args, Stdout: p.stdout.String(), Stderr: p.stderr.String(), Code: code, Elapsed: p.elapsed}
}

// e2eCheckSane fails the test if a command panicked, crashed or raced.
func e2eCheckSane(t testing.TB, r e2eResult) {
	t.Helper()
	for _, bad := range []string{"panic", "DATA RACE", "fatal error", "goroutine "} {
		if strings.Contains(r.Stderr, bad) || strings.Contains(r.Stdout, bad) {
			t.Fatalf("output contains %q:\n%s", bad, r)
		}
	}
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
type e2eSandbox struct {
	URL  string
	proc *e2eProc
}

// e2eStartSandbox starts the sandbox accepting the test credentials, with
// extra flags (--latency 50ms, ...).
func e2eStartSandbox(t testing.TB, flags ...string) *e2eSandbox {
	t.Helper()
	return e2eStartSandboxKey(t, e2ePartner, e2eKey, flags...)
}

// e2eStartSandboxKey starts the sandbox accepting partner and key.
func e2eStartSandboxKey(t testing.TB, partner, key string, flags ...string) *e2eSandbox {
	t.Helper()
	bin := e2eBinary(t)
	args := append([]string{"sandbox", "--addr", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"SMILE_PARTNER_ID=" + partner, "SMILE_API_KEY=" + key, "PATH=/usr/bin:/bin", "GORACE=halt_on_error=1 atexit_sleep_ms=50"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &e2eProc{t: t, cmd: cmd, args: args, stdout: &e2eBuffer{}, stderr: &e2eBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stdout, line)
			if u, ok := strings.CutPrefix(line, "sandbox listening on "); ok {
				select {
				case urls <- u:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		p.elapsed = time.Since(p.start)
		close(p.done)
	}()
	s := &e2eSandbox{proc: p}
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.URL = <-urls:
	case <-p.done:
		t.Fatalf("the sandbox exited before listening:\n%s", p.result())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-p.done
		t.Fatalf("the sandbox did not say where it listens within 30s:\n%s", p.result())
	}
	if u, err := url.Parse(s.URL); err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		t.Fatalf("the sandbox listens on %q, want http://127.0.0.1:PORT", s.URL)
	}
	return s
}

// stop ends the sandbox with SIGTERM (SIGKILL if it lingers) and checks it
// did not crash.
func (s *e2eSandbox) stop(t testing.TB) {
	if s.proc.Exited() {
		return
	}
	s.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.done:
	case <-time.After(15 * time.Second):
		s.proc.cmd.Process.Kill()
		<-s.proc.done
		t.Errorf("the sandbox did not stop within 15s of SIGTERM")
	}
	r := s.proc.result()
	if os.Getenv("BULKENROLL_E2E_TIMING") != "" {
		t.Logf("TIMING sandbox stop %s", r.Elapsed)
	}
	for _, bad := range []string{"panic", "DATA RACE", "fatal error"} {
		if strings.Contains(r.Stderr, bad) {
			t.Errorf("the sandbox's output contains %q:\n%s", bad, r)
		}
	}
}

// Output is what the sandbox printed so far, both streams.
func (s *e2eSandbox) Output() string { return s.proc.stdout.String() + s.proc.stderr.String() }

// State reads GET /sandbox/state.
func (s *e2eSandbox) State(t testing.TB) sandbox.State {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.URL + "/sandbox/state")
	if err != nil {
		t.Fatalf("sandbox state: %v\nthe sandbox's output:\n%s", err, s.Output())
	}
	defer resp.Body.Close()
	var st sandbox.State
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox state: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("sandbox state: %v", err)
	}
	return st
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
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &e2eDelayProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
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

// e2eJPEG returns a small real JPEG whose colour depends on n.
func e2eJPEG(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, e2eImage(n), &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// e2ePNG returns a small real PNG whose colour depends on n.
func e2ePNG(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, e2eImage(n)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func e2eImage(n int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for y := range 16 {
		for x := range 16 {
			img.Set(x, y, color.RGBA{uint8(n * 37), uint8(n*11 + x*8), uint8(y * 16), 255})
		}
	}
	return img
}

// e2eWriteFile writes data to path, creating its folder.
func e2eWriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// e2eWriteCSV writes records (the header first) as a CSV file at path.
func e2eWriteCSV(t testing.TB, path string, records [][]string) {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(records); err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, path, b.Bytes())
}

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
