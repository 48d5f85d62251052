//go:build unix

package main

// End-to-end tests of the issue "No row lost or wrongly settled under
// real-world conditions": piped manifests, answers that are not Smile ID's,
// account-level stops with workers asleep, early stops that must not rewrite
// or write rows, the unknown-outcome flag, and signals. Each test runs the
// real binary (and, where it helps, the sandbox binary); helpers are in
// e2e_helpers_test.go, and the few of this file are named rows....

import (
	"bufio"
	"bulkenroll/importer/testkit"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// rowsAbsManifest writes, in dir, n good rows (e2eManifest) and returns the
// manifest's text with every photo path made absolute (a piped manifest has
// no folder of its own), that text's file, and the user IDs.
func rowsAbsManifest(t testing.TB, dir, prefix string, n int) (string, string, []string) {
	t.Helper()
	m, ids := e2eManifest(t, dir, prefix, n)
	f, err := os.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		rec[2] = filepath.Join(dir, rec[2])
	}
	abs := filepath.Join(dir, prefix+"-abs.csv")
	e2eWriteCSV(t, abs, recs)
	text, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	return string(text), abs, ids
}

// rowsEnded is when the process of r (started as p) ended.
func rowsEnded(p *e2eProc, r e2eResult) time.Time { return p.Started().Add(r.Elapsed) }

// rowsUserOf returns the user_id of a backfill request's body.
func rowsUserOf(r *http.Request) string {
	var body struct {
		UserID string `json:"user_id"`
	}
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	return body.UserID
}

// rowsSuccess is a properly signed success for user (as the API answers).
func rowsSuccess(user string, job int) string {
	ts := signature.Timestamp(time.Now())
	return fmt.Sprintf(`{"ResultCode":"0840","ResultText":"Enroll User","SmileJobID":"%010d","PartnerParams":{"user_id":%q,"job_id":"job-%d","job_type":4},"timestamp":%q,"signature":%q}`,
		job, user, job, ts, signature.Sign(e2eKey, e2ePartner, ts))
}

// rowsAnswer writes a JSON answer with status.
func rowsAnswer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// rowsServer starts an httptest server with h and a quiet error log.
func rowsServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// TestRowsPipedManifest (case 1): a manifest read from a pipe, with the
// progress display on, loses no row: standard input named /dev/stdin, a
// process substitution <(cat file), and -. (The old binary counted the rows
// of any manifest but - ahead of the import by reading it a second time: on
// a pipe, the count ate rows the import never saw.)
func TestRowsPipedManifest(t *testing.T) {
	t.Parallel()
	// 2,000 rows of some 85 bytes: over twice a pipe's 64 KiB buffer, so that a
	// count ahead of the import would eat rows the import never sees.
	const rows = 2000
	dir := t.TempDir()
	// 16 photos for all rows: writing one per row costs more than it proves.
	recs := [][]string{{"user_id", "user_created_at", "photo"}}
	ids := make([]string, rows)
	for i := range ids {
		ids[i] = fmt.Sprintf("pipe-%04d", i+1)
		photo := filepath.Join(dir, fmt.Sprintf("photo-%02d.jpg", i%16))
		if i < 16 {
			e2eWriteFile(t, photo, e2eJPEG(t, i))
		}
		recs = append(recs, []string{ids[i], "2021-08-12T15:14:43Z", photo})
	}
	abs := filepath.Join(dir, "pipe.csv")
	e2eWriteCSV(t, abs, recs)
	data, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2*64<<10 {
		t.Fatalf("the manifest is %d bytes, want over twice a pipe's buffer", len(data))
	}
	text := string(data)
	args := []string{"--workers", "8", "--rate", "0", "--json"} // progress on: not --no-progress
	cases := []struct {
		name  string
		start func(c *e2eCLI) *e2eProc
	}{
		{"dev-stdin", func(c *e2eCLI) *e2eProc {
			return c.StartStdin(strings.NewReader(text), append([]string{"run", "--manifest", "/dev/stdin"}, args...)...)
		}},
		{"process-substitution", func(c *e2eCLI) *e2eProc {
			script := fmt.Sprintf("exec %q run --manifest <(cat %q) %s", c.bin, abs, strings.Join(args, " "))
			return c.StartProgram("bash", nil, "-c", script)
		}},
		{"dash", func(c *e2eCLI) *e2eProc {
			return c.StartStdin(strings.NewReader(text), append([]string{"run", "--manifest", "-"}, args...)...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := e2eStartSandbox(t)
			c := e2eNewCLI(t, sb.URL)
			r := tc.start(c).Wait()
			e2eWantCode(t, r, 0)
			e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
			e2eWantEnrolledOnce(t, sb.State(t), ids)
			e2eWantAllEnrolled(t, c, ids)
			if want := fmt.Sprintf("enrolled  %d", rows); !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks the summary of %d enrolled rows:\n%s", rows, r.Stderr)
			}
		})
	}
}

// TestRowsForeignAnswerStops (case 2): an answer with no Smile ID code (a
// wrong path at the sandbox, an HTML 404 or 200 page) stops the run with
// exit 2 and a hint at the base URL; no row is rejected or hashed, so once
// the endpoint answers right every row is enrolled. (The old binary
// rejected rows on a 404 and then refused them again as "refused before
// with this same photo"; it retried an HTML 200 page as transient and
// exited 1.)
func TestRowsForeignAnswerStops(t *testing.T) {
	t.Parallel()
	const rows = 6
	args := func(m string) []string {
		return []string{"run", "--manifest", m, "--workers", "2", "--rate", "0", "--retries", "1", "--json", "--no-progress"}
	}
	// firstRun checks the run against the wrong endpoint: exit 2, the base
	// URL named, nothing rejected, every row pending.
	firstRun := func(t *testing.T, c *e2eCLI, m string, ids []string) {
		t.Helper()
		r := c.Run(args(m)...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, "base-url") {
			t.Errorf("stderr does not point at the base URL:\n%s", r.Stderr)
		}
		s := e2eParseSummary(t, r)
		if s.Enrolled+s.Rejected+s.Failed+s.Skipped != 0 {
			t.Errorf("summary %+v: want nothing settled", s)
		}
		if rej := e2eReport(t, c, "--state", "rejected"); len(rej) != 0 {
			t.Errorf("report lists rejected rows: %+v", rej)
		}
		recs := e2eReportByUser(t, c, "--manifest", m)
		for _, id := range ids {
			if rec := recs[id]; rec.State != "pending" || rec.ResultCode != "" {
				t.Errorf("report --manifest: %s: %+v, want pending", id, rec)
			}
		}
	}

	t.Run("sandbox-wrong-path-direct", func(t *testing.T) {
		t.Parallel()
		sb := e2eStartSandbox(t)
		c := e2eNewCLI(t, sb.URL+"/wrong")
		m, ids := e2eManifest(t, c.Dir, "wrong", rows)
		firstRun(t, c, m, ids)
		if n := sb.State(t).Stats.Requests; n != 0 {
			t.Errorf("the sandbox's API got %d requests, want none (they went to /wrong)", n)
		}
	})

	// The same base URL throughout (a store is bound to it): a front server
	// answers wrong, then forwards to the sandbox, as when a proxy or path
	// is fixed.
	fronts := []struct {
		name  string
		wrong func(w http.ResponseWriter, r *http.Request, sandboxURL string)
	}{
		{"sandbox-wrong-path", func(w http.ResponseWriter, r *http.Request, sandboxURL string) {
			// The sandbox's own answer at a wrong path.
			req, _ := http.NewRequest(r.Method, sandboxURL+"/wrong"+r.URL.Path, r.Body)
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}},
		{"html-404", func(w http.ResponseWriter, r *http.Request, _ string) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>")
		}},
		{"html-200", func(w http.ResponseWriter, r *http.Request, _ string) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>")
		}},
	}
	for _, tc := range fronts {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := e2eStartSandbox(t)
			rp := testkit.NewProxy(t, sb.URL)
			var fixed atomic.Bool
			var wrongHits atomic.Int32
			front := rowsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fixed.Load() {
					rp.ServeHTTP(w, r)
					return
				}
				wrongHits.Add(1)
				tc.wrong(w, r, sb.URL)
			}))
			c := e2eNewCLI(t, front.URL)
			m, ids := e2eManifest(t, c.Dir, "front", rows)
			firstRun(t, c, m, ids)
			if n := wrongHits.Load(); n < 1 || n > 2 {
				t.Errorf("the wrong endpoint got %d requests, want 1 or 2 (one per worker at most)", n)
			}

			fixed.Store(true)
			r := c.Run(args(m)...)
			e2eWantCode(t, r, 0)
			e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
			e2eWantEnrolledOnce(t, sb.State(t), ids)
			e2eWantAllEnrolled(t, c, ids)
		})
	}
}

// rowsStopRecorder watches an API for the account-level stop: when it sent
// the 2205, and any request that came after it.
type rowsStopRecorder struct {
	mu     sync.Mutex
	sentAt time.Time // when the 2205 was written; zero before
	late   []string  // users of requests that arrived after it
}

func (s *rowsStopRecorder) arrived(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sentAt.IsZero() {
		s.late = append(s.late, user)
	}
}

// send2205 answers 2205 and notes when.
func (s *rowsStopRecorder) send2205(w http.ResponseWriter) {
	rowsAnswer(w, http.StatusUnauthorized, `{"code":"2205","error":"Unauthorized"}`)
	w.(http.Flusher).Flush()
	s.mu.Lock()
	s.sentAt = time.Now()
	s.mu.Unlock()
}

// check fails the test unless the 2205 was sent, no request came after it,
// and the process (which ended at ended) exited 2 within limit of it.
func (s *rowsStopRecorder) check(t *testing.T, r e2eResult, ended time.Time, limit time.Duration) {
	t.Helper()
	e2eWantCode(t, r, 2)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sentAt.IsZero() {
		t.Fatalf("the 2205 was never sent\n%s", r)
	}
	if d := ended.Sub(s.sentAt); d > limit {
		t.Errorf("the process ended %s after the 2205, want within %s\n%s", d.Round(time.Millisecond), limit, r)
	} else {
		t.Logf("the process ended %s after the 2205", d.Round(time.Millisecond))
	}
	if len(s.late) != 0 {
		t.Errorf("%d requests arrived after the 2205 (users %q), want none", len(s.late), s.late)
	}
}

// TestRowsAccountStopWakesWorkers (case 3): a 2205 stops the run at once
// even while the other workers sleep: on a 429 with Retry-After: 3600, or in
// exponential backoff after 500/2201 answers. The process ends within 3s of
// the 2205 and sends nothing after it.
func TestRowsAccountStopWakesWorkers(t *testing.T) {
	t.Parallel()
	const workers = 4

	t.Run("retry-after", func(t *testing.T) {
		t.Parallel()
		var rec rowsStopRecorder
		var mu sync.Mutex
		n := 0
		all := make(chan struct{}) // closed when every worker has a request in
		var throttled sync.WaitGroup
		throttled.Add(workers - 1)
		srv := rowsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := rowsUserOf(r)
			rec.arrived(user)
			mu.Lock()
			i := n
			n++
			if n == workers {
				close(all)
			}
			mu.Unlock()
			if i >= workers {
				rec.send2205(w)
				return
			}
			select {
			case <-all:
			case <-time.After(20 * time.Second):
				t.Errorf("only %d of %d workers sent a request", n, workers)
			}
			if i < workers-1 {
				w.Header().Set("Retry-After", "3600")
				rowsAnswer(w, http.StatusTooManyRequests, `{"error":"Too many requests"}`)
				w.(http.Flusher).Flush()
				throttled.Done()
				return
			}
			throttled.Wait()
			time.Sleep(300 * time.Millisecond) // the throttled workers are asleep
			rec.send2205(w)
		}))
		c := e2eNewCLI(t, srv.URL)
		m, _ := e2eManifest(t, c.Dir, "sleep", 20)
		p := c.Start("run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--json", "--no-progress")
		r := p.WaitFor(30 * time.Second)
		rec.check(t, r, rowsEnded(p, r), 3*time.Second)
		rowsWantOnlyInterrupted(t, c, r)
	})

	t.Run("backoff", func(t *testing.T) {
		t.Parallel()
		var rec rowsStopRecorder
		var mu sync.Mutex
		held := ""                  // the user whose request gets the 2205
		answers := map[string]int{} // 500s answered, by user
		srv := rowsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := rowsUserOf(r)
			rec.arrived(user)
			mu.Lock()
			first := held == ""
			if first {
				held = user
			}
			mu.Unlock()
			if !first {
				if user == held {
					rec.send2205(w)
					return
				}
				rowsAnswer(w, http.StatusInternalServerError, `{"code":"2201","error":"System Error"}`)
				mu.Lock()
				answers[user]++
				mu.Unlock()
				return
			}
			// Hold the first request until the other workers have each had
			// 4 answers: they are then in backoff (2s to 4s after the 4th).
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				ready := 0
				for _, k := range answers {
					if k >= 4 {
						ready++
					}
				}
				mu.Unlock()
				if ready >= workers-1 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("the other workers did not get 4 answers each within 20s: %v", answers)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			rec.send2205(w)
		}))
		c := e2eNewCLI(t, srv.URL)
		m, _ := e2eManifest(t, c.Dir, "backoff", 20)
		p := c.Start("run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--retries", "10", "--json", "--no-progress")
		r := p.WaitFor(40 * time.Second)
		rec.check(t, r, rowsEnded(p, r), 3*time.Second)
		mu.Lock()
		t.Logf("500s answered by user before the 2205: %v", answers)
		mu.Unlock()
		rowsWantOnlyInterrupted(t, c, r)
	})
}

// rowsWantOnlyInterrupted fails the test unless the run r, stopped by the
// account, enrolled, rejected and failed nothing: every row it touched is
// pending (a row caught asleep between tries keeps its state too).
func rowsWantOnlyInterrupted(t *testing.T, c *e2eCLI, r e2eResult) {
	t.Helper()
	s := e2eParseSummary(t, r)
	if s.Enrolled+s.Rejected+s.Skipped != 0 {
		t.Errorf("summary %+v: want nothing enrolled or rejected", s)
	}
	for _, rec := range e2eReport(t, c) {
		switch {
		case rec.State == "pending":
		default:
			t.Errorf("report: %+v, want pending", rec)
		}
	}
}

// TestRowsEarlyStopKeepsStates (case 4): a run stopped by 2205 does not
// rewrite what earlier runs settled: refused rows stay rejected with
// Smile ID's code and text, failed rows stay failed with their error, and
// enrolled rows are untouched.
func TestRowsEarlyStopKeepsStates(t *testing.T) {
	t.Parallel()
	const rows = 12
	var mode atomic.Int32 // 0: the first run's answers; 1: 2205 at once
	var mu sync.Mutex
	role := map[string]string{} // user → "fail", "refuse" or "enroll"
	second := map[string]int{}  // requests in the second run, by user
	var jobs atomic.Int32
	srv := rowsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := rowsUserOf(r)
		if mode.Load() == 1 {
			mu.Lock()
			second[user]++
			mu.Unlock()
			rowsAnswer(w, http.StatusUnauthorized, `{"code":"2205","error":"Unauthorized"}`)
			return
		}
		mu.Lock()
		what := role[user]
		mu.Unlock()
		switch what {
		case "fail":
			rowsAnswer(w, http.StatusInternalServerError, `{"code":"2201","error":"System Error"}`)
		case "refuse":
			rowsAnswer(w, http.StatusBadRequest, `{"code":"2213","error":"Invalid photo: no face found for `+user+`"}`)
		default:
			rowsAnswer(w, http.StatusOK, rowsSuccess(user, int(jobs.Add(1))))
		}
	}))
	c := e2eNewCLI(t, srv.URL)
	m, ids := e2eManifest(t, c.Dir, "keep", rows)
	mu.Lock()
	for i, id := range ids {
		role[id] = [...]string{"fail", "refuse", "enroll"}[i%3]
	}
	mu.Unlock()
	args := []string{"run", "--manifest", m, "--workers", "4", "--rate", "0", "--retries", "0", "--json", "--no-progress"}

	r := c.Run(args...)
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows / 3, Rejected: rows / 3, Failed: rows / 3})
	before := e2eReportByUser(t, c)
	for _, id := range ids {
		rec := before[id]
		ok := false
		switch role[id] {
		case "fail":
			ok = rec.State == "failed" && strings.Contains(rec.Error, "2201")
		case "refuse":
			ok = rec.State == "rejected" && rec.ResultCode == "2213" && rec.ResultText == "Invalid photo: no face found for "+id
		case "enroll":
			ok = rec.State == "enrolled" && rec.ResultCode == "0840" && rec.SmileJobID != ""
		}
		if !ok {
			t.Fatalf("after the first run: %s (%s): %+v", id, role[id], rec)
		}
	}

	time.Sleep(1100 * time.Millisecond) // a rewrite now shows in updated_at (seconds)
	mode.Store(1)
	r = c.Run(args...)
	e2eWantCode(t, r, 2)
	after := e2eReportByUser(t, c)
	if len(after) != len(before) {
		t.Errorf("report lists %d records after the stopped run, want %d", len(after), len(before))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(second) == 0 {
		t.Fatalf("the second run sent nothing:\n%s", r)
	}
	for _, id := range ids {
		b, a := before[id], after[id]
		sent := second[id]
		if sent > 0 && role[id] != "fail" {
			t.Errorf("the second run sent %s (%s) again", id, role[id])
		}
		if a.UserID != b.UserID || a.State != b.State || a.ResultCode != b.ResultCode ||
			a.ResultText != b.ResultText || a.SmileJobID != b.SmileJobID {
			t.Errorf("%s (%s, sent %d times in the stopped run) changed:\n before %+v\n after  %+v", id, role[id], sent, b, a)
			continue
		}
		// A refused row the second run read is refused again by the planner,
		// without a request (same photo): its reason then says so. That is
		// the planner's decision, not the stop's.
		rerefused := role[id] == "refuse" && a.Error == b.ResultText+
			" (refused before with this same photo; change the photo or use --retry-rejected)"
		if a.Error != b.Error && !rerefused {
			t.Errorf("%s (%s): error %q, was %q", id, role[id], a.Error, b.Error)
		}
		if a.Attempts != b.Attempts+sent {
			t.Errorf("%s (%s): %d attempts, was %d, with %d requests since", id, role[id], a.Attempts, b.Attempts, sent)
		}
		if sent == 0 && !rerefused && a.UpdatedAt != b.UpdatedAt {
			t.Errorf("%s (%s): not sent, but updated_at moved from %s to %s", id, role[id], b.UpdatedAt, a.UpdatedAt)
		}
	}
}

// TestRowsEarlyStopLargeManifest (case 5): a run of 30,000 rows stopped by
// 2205 at once writes nothing for the rows it never sent: the store holds a
// handful of records and stays small (a record per row would take some 100
// bytes each), and report --manifest shows every row pending.
func TestRowsEarlyStopLargeManifest(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("long: a manifest of 30,000 rows")
	}
	const rows, workers = 30000, 4
	sb := e2eStartSandbox(t, "--refuse", "2205")
	c := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "photo.jpg"), e2eJPEG(t, 1))
	m := filepath.Join(c.Dir, "big.csv")
	f, err := os.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString("user_id,user_created_at,photo\n")
	for i := range rows {
		fmt.Fprintf(bw, "big-%06d,2021-08-12T15:14:43Z,photo.jpg\n", i+1)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r := c.Run("run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 2)
	if r.Elapsed > 20*time.Second {
		t.Errorf("the stopped run took %s, want a quick stop", r.Elapsed)
	}
	s := e2eParseSummary(t, r)
	if s.Enrolled+s.Rejected+s.Failed+s.Skipped != 0 {
		t.Errorf("summary %+v: want nothing settled", s)
	}
	requests := sb.State(t).Stats.Requests
	if requests < 1 || requests > workers {
		t.Errorf("the sandbox got %d requests, want 1 to %d (one per worker at most)", requests, workers)
	}
	recs := e2eReport(t, c)
	if len(recs) > workers+2 {
		t.Errorf("report lists %d store records, want at most %d (the rows sent)", len(recs), workers+2)
	}
	for _, rec := range recs {
		if rec.State != "pending" || rec.Attempts > 1 {
			t.Errorf("report: %+v, want pending with at most 1 attempt", rec)
		}
	}
	all := e2eReport(t, c, "--manifest", m)
	if len(all) != rows {
		t.Errorf("report --manifest lists %d rows, want %d", len(all), rows)
	}
	for i, rec := range all {
		if want := fmt.Sprintf("big-%06d", i+1); rec.UserID != want || rec.State != "pending" {
			t.Fatalf("report --manifest row %d: %+v, want %s pending", i+1, rec, want)
		}
	}
	fi, err := os.Stat(c.Store())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store: %d bytes; run: %s; %d requests", fi.Size(), r.Elapsed.Round(time.Millisecond), requests)
	if limit := int64(rows * 25); fi.Size() >= limit {
		t.Errorf("the store is %d bytes, want under %d (25 bytes a row)", fi.Size(), limit)
	}
}

// TestRowsUnknownOutcome (case 7): a 2209 means "enrolled" only after a
// request whose outcome was unknown.
func TestRowsUnknownOutcome(t *testing.T) {
	t.Parallel()

	// (a) The sandbox enrolls and closes the connection: the row fails with
	// an unknown outcome; the next run gets 2209 and settles it enrolled.
	t.Run("dropped-after-enrolling", func(t *testing.T) {
		t.Parallel()
		sb := e2eStartSandbox(t, "--drop-after-rate", "1")
		c := e2eNewCLI(t, sb.URL)
		const rows = 3
		m, ids := e2eManifest(t, c.Dir, "drop", rows)
		r := c.Run("run", "--manifest", m, "--workers", "3", "--rate", "0", "--retries", "0", "--json", "--no-progress")
		e2eWantCode(t, r, 1)
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Failed: rows})
		for _, rec := range e2eReport(t, c) {
			if rec.State != "failed" || !strings.Contains(rec.Error, "unknown") {
				t.Errorf("report after the drop: %+v, want failed with an unknown outcome", rec)
			}
		}
		if n := len(sb.State(t).Enrolled); n != rows {
			t.Fatalf("the sandbox enrolled %d users, want %d", n, rows)
		}
		r = c.Run("run", "--manifest", m, "--rate", "0", "--json", "--no-progress")
		e2eWantCode(t, r, 0)
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
		e2eWantEnrolledOnce(t, sb.State(t), ids)
		for _, id := range ids {
			if rec := e2eReportByUser(t, c)[id]; rec.State != "enrolled" || rec.ResultCode != "2209" {
				t.Errorf("report: %s: %+v, want enrolled with result_code 2209", id, rec)
			}
		}
	})

	// (b) A 429 says nothing was done: a 2209 after it is a conflict.
	t.Run("throttled-then-2209", func(t *testing.T) {
		t.Parallel()
		var hits atomic.Int32
		srv := rowsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				rowsAnswer(w, http.StatusTooManyRequests, `{"error":"Too many requests"}`)
				return
			}
			rowsAnswer(w, http.StatusBadRequest, `{"code":"2209","error":"already enrolled"}`)
		}))
		c := e2eNewCLI(t, srv.URL)
		m, ids := e2eManifest(t, c.Dir, "conflict", 1)
		r := c.Run("run", "--manifest", m, "--rate", "0", "--json", "--no-progress")
		e2eWantCode(t, r, 1)
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 1, Rejected: 1})
		if n := hits.Load(); n != 2 {
			t.Errorf("the server got %d requests, want 2 (a 429, then the 2209)", n)
		}
		rec := e2eReportByUser(t, c)[ids[0]]
		if rec.State != "rejected" || rec.ResultCode != "2209" || !strings.Contains(rec.Error, "conflict") {
			t.Errorf("report: %+v, want rejected as a conflict with result_code 2209", rec)
		}
	})
}

// rowsStartSilentStdin starts `run --manifest -` with standard input a pipe
// that gets text and then stays open, silent, until the test ends.
func rowsStartSilentStdin(t *testing.T, c *e2eCLI, text string) *e2eProc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close() })
	p := c.StartStdin(pr, "run", "--manifest", "-", "--rate", "0", "--json", "--no-progress")
	pr.Close() // the child has its own copy
	if _, err := io.WriteString(pw, text); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRowsInterruptSilentStdin (case 8): SIGINT while the manifest's
// producer on standard input says nothing more (the pipe stays open) ends
// the run at once: exit 130 within 2s, the rows enrolled saved, nothing
// else settled. (The old binary waited for the producer: it hung.)
func TestRowsInterruptSilentStdin(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	text, _, ids := rowsAbsManifest(t, c.Dir, "silent", 3)
	p := rowsStartSilentStdin(t, c, text)
	// At least one row is sent at once (see TestRowsSilentStdinSendsEveryRow
	// for why not all three).
	e2eWaitUntil(t, 30*time.Second, "a user enrolled", func() bool { return len(sb.State(t).Enrolled) >= 1 })
	time.Sleep(300 * time.Millisecond) // the answers reach the run
	enrolled := sb.State(t).Enrolled
	signalled := time.Now()
	p.Signal(syscall.SIGINT)
	r := p.WaitFor(15 * time.Second)
	e2eWantCode(t, r, 130)
	if d := rowsEnded(p, r).Sub(signalled); d > 2*time.Second {
		t.Errorf("the run exited %s after SIGINT, want within 2s", d.Round(time.Millisecond))
	}
	s := e2eParseSummary(t, r)
	if s.Enrolled != len(enrolled) || s.Rejected+s.Failed != 0 {
		t.Errorf("summary %+v: want the %d rows the sandbox enrolled, nothing else settled", s, len(enrolled))
	}
	recs := e2eReportByUser(t, c)
	for _, id := range ids {
		rec, ok := recs[id]
		switch {
		case enrolled[id] == 1 && rec.State != "enrolled":
			t.Errorf("report: %s: %+v, want enrolled (the sandbox enrolled it)", id, rec)
		case enrolled[id] == 0 && ok && rec.State != "pending":
			t.Errorf("report: %s: %+v, want no record or pending", id, rec)
		}
	}
}

// TestRowsSilentStdinSendsEveryRow (case 8, first half): every complete row
// a silent producer has written is sent without waiting for more input.
func TestRowsSilentStdinSendsEveryRow(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	text, _, ids := rowsAbsManifest(t, c.Dir, "silent", 5)
	p := rowsStartSilentStdin(t, c, text)
	e2eWaitUntil(t, 20*time.Second, "5 users enrolled while the producer is silent", func() bool {
		return len(sb.State(t).Enrolled) == len(ids)
	})
	p.Signal(syscall.SIGINT)
	r := p.WaitFor(15 * time.Second)
	e2eWantCode(t, r, 130)
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestRowsSandboxInterruptMessage (case 9): the message about finishing
// requests in flight is the import's; the sandbox does not print it.
func TestRowsSandboxInterruptMessage(t *testing.T) {
	t.Parallel()
	c := e2eNewCLI(t, "")
	p := c.Start("sandbox", "--addr", "127.0.0.1:0")
	e2eWaitUntil(t, 30*time.Second, "the sandbox to listen", func() bool {
		return strings.Contains(p.Stdout(), "sandbox listening on")
	})
	p.Signal(syscall.SIGINT)
	r := p.WaitFor(15 * time.Second)
	t.Logf("the sandbox exited %d after SIGINT; stderr %q", r.Code, r.Stderr)
	if strings.Contains(r.Stderr, "finishing requests in flight") {
		t.Errorf("the sandbox speaks of requests in flight on SIGINT:\n%s", r.Stderr)
	}
}
