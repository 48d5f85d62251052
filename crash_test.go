//go:build unix

package main

// End-to-end tests of crash safety and faults (issue 5): kills at random
// moments, signals, a store in use or damaged, a failing API, time-outs, and
// answers that must not count as enrolled. Helpers are in
// e2e_helpers_test.go.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
	"bulkenroll/store"
)

// e2eSeed returns the seed of a test's random choices, from
// BULKENROLL_E2E_SEED if set, and logs it so that a failure can be replayed.
func e2eSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("BULKENROLL_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("BULKENROLL_E2E_SEED: %v", err)
		}
	}
	t.Logf("seed %d (BULKENROLL_E2E_SEED=%d repeats it)", seed, seed)
	return seed
}

// TestCrashKillAndResume: SIGKILL the importer at random moments with
// requests in flight, resume each time; every user ends enrolled exactly once
// and every row enrolled.
func TestCrashKillAndResume(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("long: kills and resumes an import several times")
	}
	e2eKillAndResume(t)
}

// TestCrashKillAndResumeDropAfter: the same, with a server that closes 20%
// of connections after enrolling the user (outcome unknown to the client).
func TestCrashKillAndResumeDropAfter(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("long: kills and resumes an import several times")
	}
	e2eKillAndResume(t, "--drop-after-rate", "0.2")
}

func e2eKillAndResume(t *testing.T, sandboxFlags ...string) {
	seed := e2eSeed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b696c6c))
	sb := e2eStartSandbox(t, append([]string{"--latency", "50ms", "--seed", strconv.FormatInt(seed%1000000+1, 10)}, sandboxFlags...)...)
	c := e2eNewCLI(t, sb.URL)
	const rows = 150
	m, ids := e2eManifest(t, c.Dir, "kill", rows)
	args := []string{"run", "--manifest", m, "--workers", "8", "--rate", "0", "--json", "--no-progress"}

	kills := 3 + rng.IntN(2)
	for i := range kills {
		p := c.Start(args...)
		after := 100*time.Millisecond + time.Duration(rng.Int64N(int64(500*time.Millisecond)))
		time.Sleep(after)
		if p.Exited() {
			r := p.Wait()
			t.Logf("run %d ended by itself before its kill at %s: exit %d", i+1, after, r.Code)
			e2eWantCode(t, r, 0)
			break
		}
		p.Signal(syscall.SIGKILL)
		r := p.Wait()
		st := sb.State(t)
		t.Logf("run %d killed after %s (exit %d); the sandbox has enrolled %d users in %d requests",
			i+1, after, r.Code, len(st.Enrolled), st.Stats.Requests)
		// The store is usable after every kill (on a loaded machine the
		// kill may come before the run even made it).
		if _, err := os.Stat(c.Store()); err == nil {
			e2eWantCode(t, c.Run("status"), 0)
		}
	}

	r := c.Run(args...)
	e2eWantCode(t, r, 0)
	s := e2eParseSummary(t, r)
	if s.Rows != rows || s.Enrolled+s.Skipped != rows {
		t.Errorf("final summary %+v, want every row enrolled or skipped", s)
	}
	st := sb.State(t)
	t.Logf("sandbox stats %+v", st.Stats)
	e2eWantEnrolledOnce(t, st, ids)
	e2eWantAllEnrolled(t, c, ids)
	if rej := e2eReport(t, c, "--state", "rejected"); len(rej) != 0 {
		t.Errorf("report lists rejected rows: %+v", rej)
	}
	// Nothing left to do.
	r = c.Run(args...)
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Skipped: rows})
}

// TestCrashSignal: SIGINT or SIGTERM stops taking rows, lets the requests in
// flight finish, saves and exits 130; every row is in a known state; the
// resume enrolls the rest, each user once.
func TestCrashSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			// Answers take 1 s, so that a worker starts at most one
			// request a second: the signal's delivery on a busy machine
			// lets few more go than those in flight.
			sb := e2eStartSandbox(t, "--latency", "1s")
			c := e2eNewCLI(t, sb.URL)
			const rows, workers = 60, 4
			m, ids := e2eManifest(t, c.Dir, "sig", rows)
			args := []string{"run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--json", "--no-progress"}
			p := c.Start(args...)
			e2eWaitUntil(t, 30*time.Second, "requests in flight", func() bool { return sb.State(t).Stats.Requests >= 2*workers })
			atSignal := sb.State(t).Stats.Requests
			p.Signal(sig)
			r := p.WaitFor(45 * time.Second) // the grace is 15s; the latency 1s
			e2eWantCode(t, r, 130)
			if !strings.Contains(r.Stderr, "finishing requests in flight") || !strings.Contains(r.Stderr, "interrupted") {
				t.Errorf("stderr does not tell of the interrupt:\n%s", r.Stderr)
			}
			s := e2eParseSummary(t, r)
			if s.Rows != rows || s.Rejected != 0 || s.Enrolled == 0 || s.Enrolled == rows {
				t.Errorf("summary %+v: want all %d rows counted, some enrolled, some not", s, rows)
			}
			st := sb.State(t)
			// Those in flight, and at most one more round started while the
			// signal was on its way (a run that ignored it would send all).
			if extra := st.Stats.Requests - atSignal; extra > 2*workers {
				t.Errorf("%d requests were sent after the signal, want at most %d (those already on their way)", extra, 2*workers)
			}

			// The store is consistent, and every row is in a known state:
			// what the sandbox enrolled is enrolled, the rest pending.
			status := c.Run("status", "--json")
			e2eWantCode(t, status, 0)
			var sj statusJSON
			if err := json.Unmarshal([]byte(status.Stdout), &sj); err != nil || sj.LastRun == nil || sj.LastRun.Outcome != "interrupted" {
				t.Errorf("status after the interrupt: %v\n%s", err, status.Stdout)
			}
			recs := e2eReportByUser(t, c, "--manifest", m)
			if len(recs) != rows {
				t.Errorf("report lists %d rows, want %d", len(recs), rows)
			}
			for _, id := range ids {
				rec, ok := recs[id]
				switch {
				case !ok:
					t.Errorf("report: %s missing", id)
				case st.Enrolled[id] == 1 && rec.State != "enrolled":
					t.Errorf("report: %s is %s (%s), but the sandbox enrolled it and the run had time to save it", id, rec.State, rec.Error)
				case st.Enrolled[id] == 0 && rec.State != "pending":
					t.Errorf("report: %s is %s (%s), want pending", id, rec.State, rec.Error)
				case rec.State == "pending" && rec.Attempts != 0:
					t.Errorf("report: pending %s has %d attempts (%s)", id, rec.Attempts, rec.Error)
				}
			}

			sb.Control(t, `{"latency":"0s"}`) // the resume need not wait
			r = c.Run(args...)
			e2eWantCode(t, r, 0)
			e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows - s.Enrolled, Skipped: s.Enrolled})
			e2eWantEnrolledOnce(t, sb.State(t), ids)
			e2eWantAllEnrolled(t, c, ids)
		})
	}
}

// TestCrashSecondSignal: a second signal exits 130 at once, without waiting
// for the requests in flight; the store is consistent and the resume enrolls
// every user once (2209 for those whose request was in flight).
func TestCrashSecondSignal(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	px := e2eNewDelayProxy(t, sb.URL)
	c := e2eNewCLI(t, px.URL)
	const rows, workers = 30, 4
	m, ids := e2eManifest(t, c.Dir, "sig2", rows)
	args := []string{"run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--json", "--no-progress"}

	// The answers hang for 30s: longer than the 15s grace for requests in flight.
	px.SetDelay(30 * time.Second)
	p := c.Start(args...)
	e2eWaitUntil(t, 30*time.Second, "requests in flight", func() bool { return sb.State(t).Stats.Requests >= workers })
	p.Signal(syscall.SIGINT)
	e2eWaitUntil(t, 30*time.Second, "the first signal's message", func() bool {
		return strings.Contains(p.Stderr(), "finishing requests in flight")
	})
	p.Signal(syscall.SIGINT)
	r := p.WaitFor(10 * time.Second) // at once; the first signal alone would take 15s
	e2eWantCode(t, r, 130)
	if !strings.Contains(r.Stderr, "quitting at once") {
		t.Errorf("stderr does not tell of the second signal:\n%s", r.Stderr)
	}
	inFlight := sb.State(t).Enrolled

	// The store opens, and nothing is rejected or lost.
	e2eWantCode(t, c.Run("status"), 0)
	recs := e2eReportByUser(t, c)
	for id := range inFlight {
		if rec, ok := recs[id]; !ok || rec.State != "pending" || rec.Attempts != 1 {
			t.Errorf("report: %s, in flight at the second signal: %+v, want pending with 1 attempt", id, rec)
		}
	}
	if rej := e2eReport(t, c, "--state", "rejected"); len(rej) != 0 {
		t.Errorf("report lists rejected rows: %+v", rej)
	}

	px.SetDelay(0)
	r = c.Run(args...)
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	e2eWantAllEnrolled(t, c, ids)
	if st.Stats.AlreadyEnrolled < len(inFlight) {
		t.Errorf("the sandbox answered 2209 %d times, want at least %d (the rows in flight)", st.Stats.AlreadyEnrolled, len(inFlight))
	}
}

// TestCrashStoreInUse: a second run on a store in use exits 2 at once,
// naming the file; the first run finishes unharmed.
func TestCrashStoreInUse(t *testing.T) {
	t.Parallel()
	// Answers take 2 s while the second run tries the store, so that the
	// first still holds it however slowly the second starts; then they
	// come at once and the first run ends.
	sb := e2eStartSandbox(t, "--latency", "2s")
	c := e2eNewCLI(t, sb.URL)
	const rows = 60
	m, ids := e2eManifest(t, c.Dir, "inuse", rows)
	args := []string{"run", "--manifest", m, "--workers", "2", "--rate", "0", "--json", "--no-progress"}
	p := c.Start(args...)
	e2eWaitUntil(t, 30*time.Second, "the first run's requests", func() bool { return sb.State(t).Stats.Requests >= 2 })

	r := c.Run(args...)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, c.Store()) || !strings.Contains(r.Stderr, "in use") {
		t.Errorf("the second run's message does not name the store in use:\n%s", r.Stderr)
	}
	// Waiting for the lock would take until the first run ends, a minute
	// at 2 s an answer; a slow start on a busy machine takes seconds.
	if r.Elapsed > 30*time.Second {
		t.Errorf("the second run took %s to give up, want at once", r.Elapsed)
	}
	if p.Exited() {
		t.Logf("note: the first run ended before the second one did")
	}
	// status and report do not hang on a store in use either.
	for _, cmd := range []string{"status", "report"} {
		r := c.Run(cmd)
		if r.Code != 0 && !(r.Code == 2 && strings.Contains(r.Stderr, "in use")) {
			t.Errorf("%s on a store in use:\n%s", cmd, r)
		}
		t.Logf("%s during the run: exit %d %s", cmd, r.Code, strings.TrimSpace(r.Stderr))
	}

	sb.Control(t, `{"latency":"0s"}`)
	r = p.Wait()
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestCrashNotAStore: a file that is not a store, and a real store cut to
// half its size, are refused with exit 2 and a clear message by every
// command, and left byte for byte as they were.
func TestCrashNotAStore(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "notstore", 40)

	text := filepath.Join(c.Dir, "text.db")
	e2eWriteFile(t, text, []byte("user_id,state\nthis is not a bbolt file\n"))

	real := filepath.Join(c.Dir, "real.db")
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0", "--store", real), 0)
	fi, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(real)
	// bbolt grows its file ahead of the data: the pages in use may end
	// before half the file. Cut at half the file, and at half the pages in
	// use (rounded to whole pages, so that only the content tells).
	st, err := store.Open(real, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	used := st.Size()
	st.Close()
	page := int64(os.Getpagesize())
	halfFile := filepath.Join(c.Dir, "half-file.db")
	e2eWriteFile(t, halfFile, data[:fi.Size()/2])
	halfData := filepath.Join(c.Dir, "half-data.db")
	e2eWriteFile(t, halfData, data[:max(4*page, used/2/page*page)])
	t.Logf("store: %d bytes, %d in use", fi.Size(), used)

	big := filepath.Join(c.Dir, "big.db") // plausible size, no bbolt header
	e2eWriteFile(t, big, make([]byte, 64<<10))
	zeroed := filepath.Join(c.Dir, "zeroed.db") // meta pages intact, every other page zeros
	e2eWriteFile(t, zeroed, append(data[:2*page:2*page], make([]byte, len(data)-int(2*page))...))

	damaged := []string{text, halfData, big, zeroed}
	if fi.Size()/2 < used {
		damaged = append(damaged, halfFile)
	} else {
		// Only space bbolt had not used yet was cut: the store is whole.
		e2eWantCode(t, c.Run("status", "--store", halfFile), 0)
		e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--store", halfFile), 0)
	}

	requests := sb.State(t).Stats.Requests
	for _, path := range damaged {
		sum := e2eSHA256(t, path)
		for _, args := range [][]string{
			{"run", "--manifest", m, "--no-progress", "--rate", "0"},
			{"run", "--manifest", m, "--no-progress", "--dry-run"},
			{"status"},
			{"report"},
		} {
			r := c.Run(append(args, "--store", path)...)
			e2eWantCode(t, r, 2)
			if !strings.Contains(r.Stderr, path) || !strings.Contains(r.Stderr, "damaged") {
				t.Errorf("%s on %s: the message is not clear:\n%s", args[0], filepath.Base(path), r.Stderr)
			}
			if got := e2eSHA256(t, path); got != sum {
				t.Fatalf("%s on %s changed the file", args[0], filepath.Base(path))
			}
		}
	}
	if n := sb.State(t).Stats.Requests; n != requests {
		t.Errorf("runs on a damaged store sent %d requests", n-requests)
	}
}

// TestCrashFaults: a server that fails, throttles and drops connections
// (before and after enrolling); with --retries 10 every row is enrolled
// exactly once, in at most two runs.
func TestCrashFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("long: retries through injected faults")
	}
	seed := e2eSeed(t)
	sb := e2eStartSandbox(t, "--fail-rate", "0.15", "--throttle-rate", "0.10", "--retry-after", "1s",
		"--drop-before-rate", "0.025", "--drop-after-rate", "0.025", "--seed", strconv.FormatInt(seed%1000000+1, 10))
	c := e2eNewCLI(t, sb.URL)
	const rows = 120
	m, ids := e2eManifest(t, c.Dir, "faults", rows)
	args := []string{"run", "--manifest", m, "--workers", "8", "--rate", "0", "--retries", "10", "--json", "--no-progress"}
	var r e2eResult
	for run := 1; run <= 2; run++ {
		r = c.Run(args...)
		s := e2eParseSummary(t, r)
		t.Logf("run %d: exit %d, %+v", run, r.Code, s)
		if r.Code == 0 {
			break
		}
		e2eWantCode(t, r, 1)
		if s.Rejected != 0 || s.Pending != 0 || s.Failed == 0 {
			t.Fatalf("run %d: want only failed rows left, got %+v\n%s", run, s, r)
		}
	}
	e2eWantCode(t, r, 0)
	st := sb.State(t)
	t.Logf("sandbox stats %+v", st.Stats)
	e2eWantEnrolledOnce(t, st, ids)
	e2eWantAllEnrolled(t, c, ids)
	if st.Stats.Failed == 0 || st.Stats.Throttled == 0 {
		t.Errorf("no faults were injected: %+v", st.Stats)
	}
}

// TestCrashTimeouts: requests that time out leave their rows failed (not
// stuck), with a time-out error; the server did enroll those users, so the
// next run, against a server that answers at once, gets 2209 and must count
// them as enrolled, not rejected.
func TestCrashTimeouts(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	px := e2eNewDelayProxy(t, sb.URL) // the sandbox decides at once; the answer stalls
	c := e2eNewCLI(t, px.URL)
	const rows = 6
	m, ids := e2eManifest(t, c.Dir, "timeout", rows)

	px.SetDelay(3 * time.Second)
	r := c.Run("run", "--manifest", m, "--workers", "6", "--rate", "0", "--timeout", "500ms", "--retries", "1", "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Failed: rows})
	failed := e2eReport(t, c, "--state", "failed")
	if len(failed) != rows {
		t.Fatalf("report --state failed lists %d rows, want %d", len(failed), rows)
	}
	for _, rec := range failed {
		if !strings.Contains(rec.Error, "time-out") || rec.Attempts != 2 {
			t.Errorf("report: %s: attempts %d, error %q, want 2 attempts and a time-out", rec.UserID, rec.Attempts, rec.Error)
		}
	}
	if !strings.Contains(r.Stderr, ": failed: ") {
		t.Errorf("stderr lacks the failed rows:\n%s", r.Stderr)
	}
	st := sb.State(t)
	if len(st.Enrolled) != rows {
		t.Fatalf("the stalled server enrolled %d users, want %d (its work stands)", len(st.Enrolled), rows)
	}

	px.SetDelay(0)
	r = c.Run("run", "--manifest", m, "--workers", "6", "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
	st = sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	e2eWantAllEnrolled(t, c, ids)
	for id, rec := range e2eReportByUser(t, c) {
		if rec.ResultCode != "2209" || !strings.Contains(rec.Error, "outcome was unknown") {
			t.Errorf("report: %s: %+v, want enrolled through 2209 with a note", id, rec)
		}
	}
	if st.Stats.AlreadyEnrolled < 2*rows {
		t.Errorf("the sandbox answered 2209 %d times, want at least %d", st.Stats.AlreadyEnrolled, 2*rows)
	}
}

// TestCrashTimeoutsSandboxLatency: the same with the sandbox's own
// --latency 3s, and then a run with a time-out long enough to wait for it:
// the rows tried before get 2209 and end enrolled.
func TestCrashTimeoutsSandboxLatency(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--latency", "3s")
	c := e2eNewCLI(t, sb.URL)
	const rows = 3
	m, ids := e2eManifest(t, c.Dir, "latency", rows)
	r := c.Run("run", "--manifest", m, "--workers", "3", "--rate", "0", "--timeout", "500ms", "--retries", "1", "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Failed: rows})
	for _, rec := range e2eReport(t, c, "--state", "failed") {
		if !strings.Contains(rec.Error, "no answer before the time-out") {
			t.Errorf("report: %s: error %q, want a time-out", rec.UserID, rec.Error)
		}
	}
	r = c.Run("run", "--manifest", m, "--workers", "3", "--rate", "0", "--timeout", "20s", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestCrashUnbelievableAnswers: 200 answers that are not a believable
// success (not JSON, an HTML page, cut short, unsigned, forged) never count
// as enrolled: the rows end failed with a clear reason.
func TestCrashUnbelievableAnswers(t *testing.T) {
	t.Parallel()
	success := func(key string) string {
		ts := signature.Timestamp(time.Now())
		return fmt.Sprintf(`{"ResultCode":"0840","ResultText":"Enroll User","SmileJobID":"0000000001","PartnerParams":{"user_id":"u","job_type":4},"timestamp":%q,"signature":%q}`,
			ts, signature.Sign(key, e2ePartner, ts))
	}
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   []string // in the report's error
		stops  bool     // not Smile ID's answer: the run stops, nothing settled
	}{
		{"not JSON", func(w http.ResponseWriter) { fmt.Fprint(w, "OK") },
			[]string{"not Smile ID JSON", "not counted as enrolled"}, true},
		{"HTML page", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>")
		}, []string{"not Smile ID JSON", "not counted as enrolled", "Bad Gateway"}, true},
		{"truncated JSON", func(w http.ResponseWriter) {
			s := success(e2eKey)
			fmt.Fprint(w, s[:len(s)/2])
		}, []string{"not Smile ID JSON", "not counted as enrolled"}, true},
		{"body cut short", func(w http.ResponseWriter) {
			s := success(e2eKey)
			w.Header().Set("Content-Length", strconv.Itoa(len(s)))
			fmt.Fprint(w, s[:len(s)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, []string{"connection closed before a full answer", "outcome is unknown"}, false},
		{"unsigned", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"ResultCode":"0840","ResultText":"Enroll User","SmileJobID":"1"}`)
		}, []string{"not signed", "not counted as enrolled"}, false},
		{"forged signature", func(w http.ResponseWriter) { fmt.Fprint(w, success("a-forger's-key")) },
			[]string{"signature does not verify", "not counted as enrolled"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if r.Method != http.MethodPost || r.URL.Path != "/v1/backfill_users" {
					http.Error(w, "unexpected", http.StatusNotFound)
					return
				}
				tc.answer(w)
			}))
			defer srv.Close()
			c := e2eNewCLI(t, srv.URL)
			m, ids := e2eManifest(t, c.Dir, "fake", 2)
			r := c.Run("run", "--manifest", m, "--rate", "0", "--retries", "1", "--json", "--no-progress")
			if tc.stops {
				// A page that is not Smile ID's says nothing about the row:
				// the run stops at once, exit 2, nothing settled.
				e2eWantCode(t, r, 2)
				e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Pending: 2})
				if !strings.Contains(r.Stderr, "base-url") {
					t.Errorf("stderr does not point at the base URL:\n%s", r.Stderr)
				}
				if n := hits.Load(); n < 1 || n > 2 {
					t.Errorf("the server got %d requests, want 1 or 2 (one try per row in flight)", n)
				}
			} else {
				e2eWantCode(t, r, 1)
				e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Failed: 2})
				if n := hits.Load(); n != 4 {
					t.Errorf("the server got %d requests, want 4 (2 rows, 2 tries each)", n)
				}
			}
			recs := e2eReportByUser(t, c, "--manifest", m)
			for _, id := range ids {
				rec := recs[id]
				want := "failed"
				if tc.stops {
					want = "pending"
				}
				if rec.State != want || rec.SmileJobID != "" || rec.ResultCode != "" {
					t.Errorf("report: %s: %+v, want %s", id, rec, want)
				}
				if tc.stops && rec.Attempts == 0 {
					continue // never sent: no error to check
				}
				for _, w := range tc.want {
					if !strings.Contains(rec.Error, w) {
						t.Errorf("report: %s: error %q lacks %q", id, rec.Error, w)
					}
				}
			}
		})
	}
}
