package testkit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var builds struct {
	mu   sync.Mutex
	done map[buildKey]*build
}

type buildKey struct {
	pkg  string
	race bool
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the bulkenroll command, the main package in folder pkg
// (relative to the test's working folder, "." for the package under test),
// once per test process, with the race detector when the tests have it, and
// returns the binary's path. The build sees no SMILE_ or BULKENROLL_
// variable.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	return binary(t, pkg, Race)
}

// PlainBinary is Binary without the race detector, for the commands whose
// CPU time a test pays many times over and that the race detector has
// little to find in (a read-only command, the sandbox serving a test): a
// race-built binary starts three times slower and runs several times slower.
func PlainBinary(t testing.TB, pkg string) string {
	t.Helper()
	return binary(t, pkg, false)
}

func binary(t testing.TB, pkg string, race bool) string {
	t.Helper()
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[buildKey]*build{}
	}
	key := buildKey{abs, race}
	b := builds.done[key]
	if b == nil {
		b = &build{}
		builds.done[key] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = buildBinary(abs, race) })
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.path
}

// dirPrefix names the temporary folders binaries are built in; the process
// ID in the name lets a later test process remove the folders of processes
// that are gone (no TestMain is needed to clean up at exit).
const dirPrefix = "bulkenroll-testkit-"

func buildBinary(pkg string, race bool) (string, error) {
	removeStaleDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bulkenroll")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, ".")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goTool, args...)
	cmd.Dir = pkg
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

// removeStaleDirs removes the build folders of test processes that have
// exited.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), dirPrefix)
		pid, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '-'))])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
}

// Buffer is a bytes.Buffer safe for a writer and a reader at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Cmd is a program to run.
type Cmd struct {
	// Path is the program (a Binary, or another program).
	Path string
	// Args are its arguments.
	Args []string
	// Dir is its working folder.
	Dir string
	// Env is its whole environment (nothing of the test's is passed on).
	Env []string
	// Stdin is its standard input (nil: none).
	Stdin io.Reader
	// Stdout, if set, receives the standard output too (as it comes).
	Stdout io.Writer
}

// Result is how a program ended.
type Result struct {
	Program string // the program's base name
	Args    []string
	Stdout  string
	Stderr  string
	Code    int // exit code; -1 when killed by a signal
	Elapsed time.Duration
}

// String shows the command, its exit code and both outputs.
func (r Result) String() string {
	return fmt.Sprintf("%s %s: exit %d after %s\n--- stdout:\n%s--- stderr:\n%s",
		r.Program, strings.Join(r.Args, " "), r.Code, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Proc is a program running in the background; it is killed when the test
// ends if still running.
type Proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	prog    string
	args    []string
	stdout  *Buffer
	stderr  *Buffer
	start   time.Time
	done    chan struct{}
	elapsed time.Duration
}

// Start starts c in the background.
func Start(t testing.TB, c Cmd) *Proc {
	t.Helper()
	p := &Proc{t: t, prog: filepath.Base(c.Path), args: c.Args, stdout: &Buffer{}, stderr: &Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(c.Path, c.Args...)
	p.cmd.Dir = c.Dir
	p.cmd.Env = c.Env
	if p.cmd.Env == nil {
		p.cmd.Env = []string{}
	}
	p.cmd.Stdin = c.Stdin
	p.cmd.Stdout = p.stdout
	if c.Stdout != nil {
		p.cmd.Stdout = io.MultiWriter(p.stdout, c.Stdout)
	}
	p.cmd.Stderr = p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", p.prog, strings.Join(p.args, " "), err)
	}
	go func() {
		p.cmd.Wait()
		p.elapsed = time.Since(p.start)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Run runs c and returns how it ended; it fails the test as a hang if c
// takes longer than limit.
func Run(t testing.TB, c Cmd, limit time.Duration) Result {
	t.Helper()
	return Start(t, c).WaitFor(limit)
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Proc) Started() time.Time { return p.start }

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Kill kills the process and waits for it to end.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Stdout is what the process wrote on standard output so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is what the process wrote on standard error so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Hang is how long Wait lets a program run before calling it a hang. It is a
// guard, not a performance bound: a busy machine (two test runs side by
// side on two cores) must not reach it.
const Hang = 2 * time.Minute

// Wait is WaitFor(Hang).
func (p *Proc) Wait() Result {
	p.t.Helper()
	return p.WaitFor(Hang)
}

// WaitFor waits at most limit for the process to end; a process still
// running then is killed and fails the test as a hang. A process whose
// output shows a panic, a data race or a fatal error fails the test.
// BULKENROLL_E2E_TIMING=1 logs how long it took.
func (p *Proc) WaitFor(limit time.Duration) Result {
	p.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.Kill()
		p.t.Fatalf("hang: still running after %s, killed\n%s", limit, p.Result())
	}
	r := p.Result()
	if os.Getenv("BULKENROLL_E2E_TIMING") != "" {
		var cpu time.Duration
		if st := p.cmd.ProcessState; st != nil {
			cpu = st.UserTime() + st.SystemTime()
		}
		p.t.Logf("TIMING %s cpu %s %v", r.Elapsed, cpu, r.Args)
	}
	CheckSane(p.t, r)
	return r
}

// Result is how the process ended, or what it wrote so far (Code -1) if it
// is still running.
func (p *Proc) Result() Result {
	code := -1
	if p.Exited() && p.cmd.ProcessState != nil {
		code = p.cmd.ProcessState.ExitCode()
	}
	return Result{Program: p.prog, Args: p.args, Stdout: p.stdout.String(), Stderr: p.stderr.String(), Code: code, Elapsed: p.elapsed}
}

// State is the process's state once it has ended (nil before).
func (p *Proc) State() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.cmd.ProcessState
}

// CheckSane fails the test if a program's output shows that it panicked,
// crashed or raced.
func CheckSane(t testing.TB, r Result) {
	t.Helper()
	for _, bad := range []string{"panic", "DATA RACE", "fatal error", "goroutine "} {
		if strings.Contains(r.Stderr, bad) || strings.Contains(r.Stdout, bad) {
			t.Fatalf("output contains %q:\n%s", bad, r)
		}
	}
}
