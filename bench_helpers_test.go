//go:build linux

// Helpers of the performance harness (bench_test.go): test data, the sandbox
// and importer subprocesses with their resource use, and the floor.

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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
	"bulkenroll/importer/smileid/signature"
	"bulkenroll/importer/testkit"
	"bulkenroll/store"
)

const (
	benchPartner   = testkit.Partner
	benchAPIKey    = testkit.APIKey
	benchCreatedAt = "2021-08-12T15:14:43Z"
	// benchPhotos is how many distinct photo files every manifest cycles through.
	benchPhotos = 1000
)

// benchEnv is the harness's working folder and binary.
type benchEnv struct {
	t         *testing.T
	dir       string // manifests live here; photos in dir/photos
	bin       string
	photoSize int
	photoSums []string // hex SHA-256 of each photo, for seeded stores
}

// newBenchEnv builds the binary and writes benchPhotos JPEG-looking photos of
// photoSize bytes each.
func newBenchEnv(t *testing.T, photoSize int) *benchEnv {
	t.Helper()
	dir := t.TempDir()
	e := &benchEnv{t: t, dir: dir, bin: testkit.Binary(t, "."), photoSize: photoSize}
	if err := os.Mkdir(filepath.Join(dir, "photos"), 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, photoSize)
	for i := range benchPhotos {
		for j := 0; j+8 <= len(buf); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		testkit.ShapeJPEG(buf)
		if err := os.WriteFile(e.photoPath(i), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(buf)
		e.photoSums = append(e.photoSums, hex.EncodeToString(s[:]))
	}
	return e
}

func photoName(i int) string { return fmt.Sprintf("photos/p%04d.jpg", i%benchPhotos) }

func (e *benchEnv) photoPath(i int) string { return filepath.Join(e.dir, photoName(i)) }

func benchUserID(prefix string, i int) string { return fmt.Sprintf("%s-%08d", prefix, i) }

// manifest writes a manifest of rows users named prefix-N, cycling through
// the photos, and returns its path.
func (e *benchEnv) manifest(prefix string, rows int) string {
	e.t.Helper()
	return e.manifestWith(prefix, rows, photoName)
}

// manifestWith is manifest with the photo of row i named by photo(i)
// (relative to e.dir).
func (e *benchEnv) manifestWith(prefix string, rows int, photo func(i int) string) string {
	e.t.Helper()
	return e.writeManifest(prefix, "user_id,user_created_at,photo", rows, func(w *bufio.Writer, i int) {
		fmt.Fprintf(w, "%s,%s,%s\n", benchUserID(prefix, i), benchCreatedAt, photo(i))
	})
}

// writeManifest writes dir/prefix.csv: header, then row(i) for each of
// rows rows, and returns its path.
func (e *benchEnv) writeManifest(prefix, header string, rows int, row func(w *bufio.Writer, i int)) string {
	e.t.Helper()
	path := filepath.Join(e.dir, prefix+".csv")
	f, err := os.Create(path)
	if err != nil {
		e.t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(header + "\n")
	for i := range rows {
		row(w, i)
	}
	if err := w.Flush(); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// linkedManifest writes a manifest of rows users whose photos are rows
// distinct paths (hard links to the photos, 1,000 per folder), for validate.
func (e *benchEnv) linkedManifest(prefix string, rows int) string {
	e.t.Helper()
	path := filepath.Join(e.dir, prefix+".csv")
	f, err := os.Create(path)
	if err != nil {
		e.t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("user_id,user_created_at,photo\n")
	for i := range rows {
		sub := fmt.Sprintf("%s-photos/d%04d", prefix, i/1000)
		if i%1000 == 0 {
			if err := os.MkdirAll(filepath.Join(e.dir, sub), 0o755); err != nil {
				e.t.Fatal(err)
			}
		}
		name := fmt.Sprintf("%s/p%07d.jpg", sub, i)
		if err := os.Link(e.photoPath(i), filepath.Join(e.dir, name)); err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(w, "%s,%s,%s\n", benchUserID(prefix, i), benchCreatedAt, name)
	}
	if err := w.Flush(); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// seedStore writes a store, bound to baseURL, in which the rows of
// manifest(prefix, rows) are all enrolled, as an import would have left it.
func (e *benchEnv) seedStore(path, baseURL, prefix string, rows int) {
	e.t.Helper()
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := st.Bind(benchPartner, baseURL); err != nil {
		e.t.Fatal(err)
	}
	run, err := st.BeginRun(prefix+".csv", time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range rows {
		id := benchUserID(prefix, i)
		st.Put(id, store.Record{UserID: id, State: store.Enrolled, Line: i + 2, CreatedAt: benchCreatedAt,
			Photo: photoName(i), PhotoSHA256: e.photoSums[i%benchPhotos], Attempts: 1, ResultCode: "0840",
			ResultText: "Enroll User", SmileJobID: strconv.Itoa(1_000_000_000 + i), Run: run.ID, UpdatedAt: now})
	}
	run.Ended, run.Outcome = time.Now().UTC(), "finished"
	run.Counts = map[string]int{"rows": rows, "enrolled": rows}
	if err := st.EndRun(run); err != nil {
		e.t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		e.t.Fatal(err)
	}
}

// benchEnviron is the environment of a subprocess: ours, without any Smile
// ID or bulkenroll setting, plus extra.
func benchEnviron(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SMILE_") || strings.HasPrefix(kv, "BULKENROLL_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "SMILE_PARTNER_ID="+benchPartner, "SMILE_API_KEY="+benchAPIKey)
	return append(env, extra...)
}

// sandboxProc is a `bulkenroll sandbox` subprocess.
type sandboxProc struct {
	*testkit.SandboxProc
	url string
}

// startSandbox starts the emulator on a free loopback port, with the
// flags in extra added (--quota N, for instance).
func (e *benchEnv) startSandbox(latency time.Duration, extra ...string) *sandboxProc {
	e.t.Helper()
	sb := testkit.StartSandbox(e.t, e.bin, benchPartner, benchAPIKey, append([]string{"--latency", latency.String()}, extra...)...)
	return &sandboxProc{SandboxProc: sb, url: sb.URL}
}

// state returns the emulator's counters (GET /sandbox/state).
func (s *sandboxProc) state(t *testing.T) sandbox.Stats {
	t.Helper()
	return s.fullState(t).Stats
}

// fullState returns the emulator's whole state document (GET /sandbox/state).
func (s *sandboxProc) fullState(t *testing.T) sandbox.State {
	t.Helper()
	return s.State(t)
}

// stop interrupts the emulator, waits for it, and returns the CPU time it used.
func (s *sandboxProc) stop() time.Duration {
	p := s.Proc()
	if !p.Exited() {
		p.Signal(os.Interrupt)
		<-p.Done()
	}
	if ru, ok := p.State().SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return 0
}

// procResult is what one subprocess used.
type procResult struct {
	Wall     time.Duration
	CPU      time.Duration // user + system
	MaxRSS   int64         // bytes, the process's own peak: VmHWM sampled from /proc (RUMaxRSS if none)
	RUMaxRSS int64         // bytes, ru_maxrss from the kernel: also counts the peak RSS of this test process (see runBin)
	PeakAnon int64         // bytes, peak RssAnon sampled from /proc
	PeakFile int64         // bytes, peak RssFile sampled from /proc
	Exit     int
	Stdout   string
	Stderr   string
}

// runBin runs the binary with env added and returns what it used.
func (e *benchEnv) runBin(env []string, args ...string) procResult {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = benchEnviron(env...)
	cmd.Dir = e.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	stopWatch := watchRSS(cmd.Process.Pid)
	err := cmd.Wait()
	wall := time.Since(start)
	anon, file, hwm := stopWatch()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			e.t.Fatal(err)
		}
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	// The child's ru_maxrss is not its own peak alone: Go starts a child
	// with vfork (CLONE_VM), and at exec Linux folds the high-water mark of
	// the memory it leaves, this test process's, into the child's maxrss.
	// A test process that once held more than the child (the big photos it
	// generated, say) would be counted instead. VmHWM, sampled while the
	// child runs, is the child's own; it misses only the last sampling
	// interval before exit.
	maxRSS := hwm
	if maxRSS <= 0 {
		maxRSS = ru.Maxrss * 1024
	}
	return procResult{
		Wall:     wall,
		CPU:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS:   maxRSS,
		RUMaxRSS: ru.Maxrss * 1024,
		PeakAnon: anon,
		PeakFile: file,
		Exit:     cmd.ProcessState.ExitCode(),
		Stdout:   stdout.String(),
		Stderr:   stderr.String(),
	}
}

// watchRSS samples the RssAnon, RssFile and VmHWM of process pid until the
// returned function is called, which returns their peaks in bytes.
func watchRSS(pid int) func() (anon, file, hwm int64) {
	var peakAnon, peakFile, peakHWM int64
	quit := make(chan struct{})
	done := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(path); err == nil {
				for line := range strings.SplitSeq(string(b), "\n") {
					name, val, ok := strings.Cut(line, ":")
					if !ok || (name != "RssAnon" && name != "RssFile" && name != "VmHWM") {
						continue
					}
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
					switch name {
					case "RssAnon":
						peakAnon = max(peakAnon, kb*1024)
					case "RssFile":
						peakFile = max(peakFile, kb*1024)
					default:
						peakHWM = max(peakHWM, kb*1024)
					}
				}
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (int64, int64, int64) {
		close(quit)
		<-done
		return peakAnon, peakFile, peakHWM
	}
}

// runSummary is the --json summary of `bulkenroll run`.
type runSummary = e2eSummary

// importResult is one `bulkenroll run`.
type importResult struct {
	procResult
	Sum       runSummary
	StoreSize int64
}

// runImport runs `bulkenroll run` on manifestPath with the store at
// storePath against baseURL, and checks that it ended with exit code 0.
func (e *benchEnv) runImport(manifestPath, storePath, baseURL string, workers int) importResult {
	e.t.Helper()
	r := e.runImportWith(manifestPath, storePath, baseURL, workers, "--rate", "0")
	if r.Exit != 0 {
		e.t.Fatalf("bulkenroll run %s: exit %d\n%s", filepath.Base(manifestPath), r.Exit, lastLines(r.Stderr, 20))
	}
	return r
}

// runImportWith runs `bulkenroll run` as runImport does, with the flags in
// args instead of --rate 0 (none: the default settings), and leaves the
// exit code to the caller; it fails only if there is no summary. workers 0
// passes no --workers (the default).
func (e *benchEnv) runImportWith(manifestPath, storePath, baseURL string, workers int, args ...string) importResult {
	e.t.Helper()
	flags := []string{"run", "--manifest", manifestPath, "--no-progress", "--json"}
	if workers > 0 {
		flags = append(flags, "--workers", strconv.Itoa(workers))
	}
	p := e.runBin([]string{"SMILE_BASE_URL=" + baseURL, "BULKENROLL_STORE=" + storePath}, append(flags, args...)...)
	r := importResult{procResult: p}
	if err := json.Unmarshal([]byte(strings.TrimSpace(p.Stdout)), &r.Sum); err != nil {
		e.t.Fatalf("bulkenroll run %s: exit %d, summary %q: %v\n%s", filepath.Base(manifestPath), p.Exit, p.Stdout, err,
			lastLines(p.Stderr, 20))
	}
	if fi, err := os.Stat(storePath); err == nil {
		r.StoreSize = fi.Size()
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// floorResult is one run of the floor.
type floorResult struct {
	Wall time.Duration
	CPU  time.Duration // of this process during the run
	Rows int
	Bad  int // answers other than 200
	Err  error
}

// runFloor is the floor the importer is compared with: workers goroutines
// that each take the next row, read its photo, base64-encode it into a signed
// JSON body, POST it with a shared keep-alive client and read the answer.
// Nothing else: no manifest, no validation, no store, no answer checks.
func (e *benchEnv) runFloor(baseURL, prefix string, rows, workers int) floorResult {
	return floorLoop(baseURL+"/v1/backfill_users", rows, workers, func(i int, body *bytes.Buffer, h http.Header) error {
		photo, err := os.ReadFile(e.photoPath(i))
		if err != nil {
			return err
		}
		ts := signature.Timestamp(time.Now())
		body.Grow(base64.StdEncoding.EncodedLen(len(photo)) + 256)
		fmt.Fprintf(body, `{"partner_id":%q,"timestamp":%q,"signature":%q,"user_id":%q,"user_created_at":%q,"photo":"`,
			benchPartner, ts, signature.Sign(benchAPIKey, benchPartner, ts), benchUserID(prefix, i), benchCreatedAt)
		body.Write(base64.StdEncoding.AppendEncode(body.AvailableBuffer(), photo))
		body.WriteString(`"}`)
		h.Set("Content-Type", "application/json")
		return nil
	})
}

// floorLoop runs workers goroutines that each take the next row, have
// build write its body (reset) and headers, POST it to url with a shared
// keep-alive client and read the answer.
func floorLoop(url string, rows, workers int, build func(i int, body *bytes.Buffer, h http.Header) error) floorResult {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers
	client := &http.Client{Transport: t}
	defer t.CloseIdleConnections()
	var next atomic.Int64
	var bad atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var body bytes.Buffer
			for {
				i := int(next.Add(1) - 1)
				if i >= rows {
					return
				}
				body.Reset()
				h := http.Header{}
				if err := build(i, &body, h); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				rb := &closeSignal{Reader: bytes.NewReader(body.Bytes()), closed: make(chan struct{})}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, rb)
				req.ContentLength = int64(body.Len())
				req.Header = h
				resp, err := client.Do(req)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
				<-rb.closed // the transport has let go of the body: reuse it
			}
		})
	}
	wg.Wait()
	return floorResult{Wall: time.Since(start), CPU: selfCPU() - cpu0, Rows: rows, Bad: int(bad.Load()), Err: firstErr}
}

// closeSignal is a request body that says when the transport closed it.
type closeSignal struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *closeSignal) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// selfCPU is the user + system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machine describes the computer the harness runs on.
func machine() (cpuModel string, cores int) {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			if cpuModel == "" {
				cpuModel = strings.TrimSpace(val)
			}
			cores++
		}
	}
	if cpuModel == "" {
		cpuModel = "unknown"
	}
	return cpuModel, cores
}
