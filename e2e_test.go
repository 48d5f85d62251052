//go:build unix

package main

// End-to-end tests of the command line (issue 4): the real binary against
// the sandbox binary, on loopback, with manifests and photos made in
// temporary folders. Helpers are in e2e_helpers_test.go.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2ECleanImport: a clean import exits 0, prints the exact --json
// summary, and the sandbox enrolled every user once.
func TestE2ECleanImport(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "clean", 20)

	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 0)
	// Exactly the documented keys, in the documented order.
	var keys []string
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("stdout %q is not a JSON object", r.Stdout)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"rows", "enrolled", "skipped", "rejected", "failed", "pending", "seconds"}; !slices.Equal(keys, want) {
		t.Errorf("summary keys %q, want %q", keys, want)
	}
	s := e2eParseSummary(t, r)
	e2eWantSummary(t, s, e2eSummary{Rows: 20, Enrolled: 20})
	if s.Seconds <= 0 {
		t.Errorf("seconds = %v, want > 0", s.Seconds)
	}
	if !strings.Contains(r.Stderr, "run 1 finished") || !strings.Contains(r.Stderr, "enrolled  20") {
		t.Errorf("stderr lacks the human summary:\n%s", r.Stderr)
	}

	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	if st.Stats.Requests != 20 {
		t.Errorf("the sandbox got %d requests, want 20", st.Stats.Requests)
	}
	for id, rec := range e2eReportByUser(t, c) {
		if rec.State != "enrolled" || rec.ResultCode != "0840" || rec.ResultText != "Enroll User" ||
			rec.SmileJobID == "" || rec.Attempts != 1 || rec.Error != "" {
			t.Errorf("report: %s: %+v, want enrolled 0840 with a job ID after 1 attempt", id, rec)
		}
	}
}

// TestE2ERerunSendsNothing: a second run of the same manifest skips every
// row without sending anything, and without reading the photos.
func TestE2ERerunSendsNothing(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "rerun", 15)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)
	before := sb.State(t).Stats.Requests

	// Enrolled rows are skipped without reading their photo: remove them.
	if err := os.RemoveAll(filepath.Join(c.Dir, "photos")); err != nil {
		t.Fatal(err)
	}
	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 15, Skipped: 15})
	st := sb.State(t)
	if st.Stats.Requests != before {
		t.Errorf("the re-run sent %d requests, want none", st.Stats.Requests-before)
	}
	e2eWantEnrolledOnce(t, st, ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestE2EBadRowsMixed: bad rows are rejected with a line each on standard
// error; the good rows around them are enrolled; exit 1.
func TestE2EBadRowsMixed(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "a.jpg"), e2eJPEG(t, 1))
	e2eWriteFile(t, filepath.Join(c.Dir, "b.png"), e2ePNG(t, 2))
	e2eWriteFile(t, filepath.Join(c.Dir, "cat.jpg"), []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	m := filepath.Join(c.Dir, "m.csv")
	e2eWriteCSV(t, m, [][]string{
		{"user_id", "user_created_at", "photo"},
		{"mix-good-1", "2021-08-12", "a.jpg"},           // 2
		{"", "2021-08-12", "a.jpg"},                     // 3 no user_id
		{"mix-bad-date", "12/08/2021", "a.jpg"},         // 4
		{"mix-good-2", "2021-08-12T10:00:00Z", "b.png"}, // 5
		{"mix-no-photo", "2021-08-12", "missing.jpg"},   // 6
		{"mix-gif", "2021-08-12", "cat.jpg"},            // 7
		{"mix-good-1", "2021-08-12", "a.jpg"},           // 8 duplicate
		{"mix-good-3", "2021-08-12", "b.png"},           // 9
	})
	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 8, Enrolled: 3, Rejected: 5})
	for _, want := range []string{
		`line 3: "": rejected: user_id: missing`,
		`line 4: mix-bad-date: rejected: user_created_at: "12/08/2021"`,
		`line 6: mix-no-photo: rejected: photo: file not found: ` + filepath.Join(c.Dir, "missing.jpg"),
		`line 7: mix-gif: rejected: photo: not a JPEG or PNG (content is a GIF image)`,
		`line 8: mix-good-1: rejected: user_id: duplicate of line 2`,
	} {
		if !e2eHasLinePrefix(r.Stderr, want) {
			t.Errorf("stderr lacks a line starting %q:\n%s", want, r.Stderr)
		}
	}
	if n := strings.Count(r.Stderr, "\nline ") + e2eBool(strings.HasPrefix(r.Stderr, "line ")); n != 5 {
		t.Errorf("stderr has %d row lines, want 5:\n%s", n, r.Stderr)
	}
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, []string{"mix-good-1", "mix-good-2", "mix-good-3"})
	if st.Stats.Requests != 3 {
		t.Errorf("the sandbox got %d requests, want 3 (bad rows are never sent)", st.Stats.Requests)
	}
}

// TestE2EWrongKey: a key the API refuses (2205) stops the run at once with
// exit 2 and an explanation; nothing is rejected, the rows stay pending, and
// a run with the right key then does them all.
func TestE2EWrongKey(t *testing.T) {
	t.Parallel()
	const rightKey = "the-right-key"
	sb := e2eStartSandboxKey(t, e2ePartner, rightKey)
	c := e2eNewCLI(t, sb.URL) // the test key, which the sandbox refuses
	m, ids := e2eManifest(t, c.Dir, "wrongkey", 40)

	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "4")
	e2eWantCode(t, r, 2)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 40, Pending: 40})
	for _, want := range []string{"2205", "check the API key and partner ID", "environment"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	st := sb.State(t)
	if st.Stats.Requests == 0 || st.Stats.Requests > 8 {
		t.Errorf("the sandbox got %d requests, want 1 to 8: the run must stop at the first 2205", st.Stats.Requests)
	}
	if st.Stats.Unauthorized != st.Stats.Requests || len(st.Enrolled) != 0 {
		t.Errorf("sandbox stats %+v, want only unauthorized requests", st.Stats)
	}
	if rej := e2eReport(t, c, "--state", "rejected"); len(rej) != 0 {
		t.Errorf("report lists %d rejected rows, want none: %+v", len(rej), rej)
	}
	// Only the rows sent have a record; report --manifest shows every row
	// of the manifest, the ones never reached as pending.
	if recs := e2eReportByUser(t, c); len(recs) == 0 || len(recs) > 8 {
		t.Errorf("report lists %d records, want only the rows sent (1 to 8)", len(recs))
	}
	recs := e2eReportByUser(t, c, "--manifest", m)
	if len(recs) != len(ids) {
		t.Errorf("report --manifest lists %d rows, want %d", len(recs), len(ids))
	}
	for _, id := range ids {
		if rec := recs[id]; rec.State != "pending" {
			t.Errorf("report: %s is %q, want pending", id, rec.State)
		}
	}

	// The right key: everything is enrolled, once.
	c.Env["SMILE_API_KEY"] = rightKey
	r = c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "4")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 40, Enrolled: 40})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestE2EAccountRefused: 2214 and 2220 stop the run like 2205, with the
// likely cause.
func TestE2EAccountRefused(t *testing.T) {
	t.Parallel()
	for code, cause := range map[string]string{
		"2214": "ask Smile ID to enable user backfill",
		"2220": "production access is not enabled",
	} {
		sb := e2eStartSandbox(t, "--refuse", code)
		c := e2eNewCLI(t, sb.URL)
		m, _ := e2eManifest(t, c.Dir, "refused", 10)
		r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "2")
		e2eWantCode(t, r, 2)
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 10, Pending: 10})
		if !strings.Contains(r.Stderr, code) || !strings.Contains(r.Stderr, cause) {
			t.Errorf("%s: stderr does not explain the refusal:\n%s", code, r.Stderr)
		}
		if n := sb.State(t).Stats.Requests; n > 4 {
			t.Errorf("%s: the sandbox got %d requests, want the run to stop at the first refusal", code, n)
		}
		if rej := e2eReport(t, c, "--state", "rejected"); len(rej) != 0 {
			t.Errorf("%s: report lists rejected rows: %+v", code, rej)
		}
	}
}

// TestE2ERateLimit: --rate 20 with 8 workers holds: the requests' arrivals
// span what a limiter of 20/s needs for them (e2eRateCheck), which a loaded
// machine's late requests cannot break, and a broken limiter (a limit per
// worker, or none) is far from.
func TestE2ERateLimit(t *testing.T) {
	const rate, workers, rows = 20, 8, 160
	const burst = 2 // a tenth of a second's worth, at most the workers
	sb := e2eStartSandbox(t)
	rec := e2eRecordArrivals(t, sb.URL)
	c := e2eNewCLI(t, rec.URL)
	m, ids := e2eManifest(t, c.Dir, "rate", rows)
	r := c.Run("run", "--manifest", m, "--json", "--no-progress",
		"--rate", strconv.Itoa(rate), "--workers", strconv.Itoa(workers))
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: rows})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	at := rec.of(nil)
	avg, err := e2eRateCheck(at, rate, burst)
	t.Logf("%d requests at %.1f/s on average; the run took %s", len(at), avg, r.Elapsed.Round(time.Millisecond))
	if len(at) != rows {
		t.Errorf("%d requests went through the proxy, want %d", len(at), rows)
	}
	if err != nil {
		t.Errorf("--rate %d: %v", rate, err)
	}
}

// TestE2EStoreBoundElsewhere: a store made for one base URL (or partner)
// refuses another, with exit 2 and a message, before anything is sent.
func TestE2EStoreBoundElsewhere(t *testing.T) {
	t.Parallel()
	sbA := e2eStartSandbox(t)
	sbB := e2eStartSandbox(t)
	c := e2eNewCLI(t, sbA.URL)
	m, _ := e2eManifest(t, c.Dir, "bound", 3)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)

	c.Env["SMILE_BASE_URL"] = sbB.URL
	r := c.Run("run", "--manifest", m, "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 2)
	for _, want := range []string{"store belongs to another partner or endpoint", sbA.URL, sbB.URL, c.Store(), "use another --store"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	// The flag too, and a dry run checks the binding as well.
	c.Env["SMILE_BASE_URL"] = sbA.URL
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--base-url", sbB.URL), 2)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--base-url", sbB.URL, "--dry-run"), 2)
	if n := sbB.State(t).Stats.Requests; n != 0 {
		t.Errorf("the other sandbox got %d requests, want none", n)
	}

	c.Env["SMILE_PARTNER_ID"] = "another-partner"
	r = c.Run("run", "--manifest", m, "--no-progress")
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "partner "+strconv.Quote(e2ePartner)) || !strings.Contains(r.Stderr, `"another-partner"`) {
		t.Errorf("stderr does not name both partners:\n%s", r.Stderr)
	}
	if n := sbA.State(t).Stats.Requests; n != 3 {
		t.Errorf("the sandbox got %d requests, want the 3 of the first run", n)
	}
}

// TestE2EDryRun: --dry-run sends nothing, and creates no store where none
// existed, with or without credentials; on an existing store it changes
// nothing and plans only what is left.
func TestE2EDryRun(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "dry", 6)
	e2eWriteFile(t, filepath.Join(c.Dir, "empty.jpg"), nil)
	bad := filepath.Join(c.Dir, "bad.csv")
	e2eWriteCSV(t, bad, [][]string{{"user_id", "user_created_at", "photo"},
		{"dry-x", "2021-08-12", "empty.jpg"}, {"dry-y", "2021-08-12", filepath.Join(c.Dir, "photos", ids[0]+".jpg")}})

	r := c.Run("run", "--manifest", m, "--dry-run", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 6, Pending: 6})
	if !strings.Contains(r.Stderr, "dry run") {
		t.Errorf("stderr does not say it was a dry run:\n%s", r.Stderr)
	}
	// Without credentials.
	noCred := e2eNewCLI(t, "")
	delete(noCred.Env, "SMILE_API_KEY")
	delete(noCred.Env, "SMILE_PARTNER_ID")
	noCred.Env["BULKENROLL_STORE"] = c.Store()
	r = noCred.Run("run", "--manifest", m, "--dry-run", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 6, Pending: 6})
	// A row that would be rejected makes it exit 1.
	r = c.Run("run", "--manifest", bad, "--dry-run", "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Rejected: 1, Pending: 1})
	if !e2eHasLinePrefix(r.Stderr, "line 2: dry-x: rejected: photo: empty file") {
		t.Errorf("stderr lacks the rejected row:\n%s", r.Stderr)
	}

	if _, err := os.Stat(c.Store()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dry run created the store (stat: %v)", err)
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("dry runs sent %d requests, want none", n)
	}

	// With a store: enroll half, then plan the rest without touching it.
	half := filepath.Join(c.Dir, "half.csv")
	data, _ := os.ReadFile(m)
	lines := strings.SplitAfter(string(data), "\n")
	e2eWriteFile(t, half, []byte(strings.Join(lines[:4], "")))
	e2eWantCode(t, c.Run("run", "--manifest", half, "--no-progress", "--rate", "0"), 0)
	sum := e2eSHA256(t, c.Store())
	requests := sb.State(t).Stats.Requests
	r = c.Run("run", "--manifest", m, "--dry-run", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 6, Skipped: 3, Pending: 3})
	if e2eSHA256(t, c.Store()) != sum {
		t.Errorf("a dry run changed the store")
	}
	if n := sb.State(t).Stats.Requests; n != requests {
		t.Errorf("a dry run sent %d requests", n-requests)
	}
}

// TestE2ERejectsFile: --rejects writes exactly the rows rejected in this run,
// with Smile ID's code for rows it refused and none for rows refused before
// sending.
func TestE2ERejectsFile(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	dir := c.Dir
	e2eWriteFile(t, filepath.Join(dir, "photos", "ok1.jpg"), e2eJPEG(t, 1))
	e2eWriteFile(t, filepath.Join(dir, "photos", "ok2.png"), e2ePNG(t, 2))
	e2eWriteFile(t, filepath.Join(dir, "photos", "cat.gif"), []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	big := bytes.Repeat([]byte{0}, 5<<20+1) // valid JPEG start, one byte over the API's limit
	copy(big, e2eJPEG(t, 3))
	e2eWriteFile(t, filepath.Join(dir, "photos", "big.jpg"), big)

	// Someone else (another store) enrolls rj-taken first: a conflict for this store.
	other := e2eNewCLI(t, sb.URL)
	otherManifest := filepath.Join(other.Dir, "m.csv")
	e2eWriteFile(t, filepath.Join(other.Dir, "p.png"), e2ePNG(t, 9))
	e2eWriteCSV(t, otherManifest, [][]string{{"user_id", "user_created_at", "photo"}, {"rj-taken", "2020-01-01", "p.png"}})
	e2eWantCode(t, other.Run("run", "--manifest", otherManifest, "--no-progress"), 0)

	m := filepath.Join(dir, "m.csv")
	e2eWriteCSV(t, m, [][]string{
		{"user_id", "user_created_at", "photo"},
		{"rj-ok-1", "2021-08-12", "photos/ok1.jpg"},                    // 2 enrolled
		{"", "2021-08-12", "photos/ok1.jpg"},                           // 3
		{"rj-date", "12/08/2021", "photos/ok1.jpg"},                    // 4
		{"rj-nophoto", "2021-08-12", "photos/missing.jpg"},             // 5
		{"rj-gif", "2021-08-12", "photos/cat.gif"},                     // 6
		{"rj-ok-1", "2021-08-12", "photos/ok1.jpg"},                    // 7 duplicate
		{"rj-big", "2021-08-12", "photos/big.jpg"},                     // 8 refused by the API: 2213
		{"rj-taken", "2021-08-12", "photos/ok2.png"},                   // 9 2209, never sent by this store
		{`rj,"quoted"`, "2021-08-12", "photos/cat.gif"},                // 10 CSV quoting
		{"rj-ok-2", "2021-08-12T15:14:43.123+02:00", "photos/ok2.png"}, // 11 enrolled
	})
	rejects := filepath.Join(dir, "out", "rejects.csv")
	os.MkdirAll(filepath.Dir(rejects), 0o755)
	// The client's own limit is raised so that the API is the one refusing rj-big.
	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0",
		"--rejects", rejects, "--max-photo-bytes", strconv.Itoa(6<<20))
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 10, Enrolled: 2, Rejected: 8})
	if !strings.Contains(r.Stderr, "rejected rows are listed in "+rejects) {
		t.Errorf("stderr does not point to the rejects file:\n%s", r.Stderr)
	}

	gif := "photo: not a JPEG or PNG (content is a GIF image)"
	want := [][]string{
		{"line", "user_id", "user_created_at", "photo", "code", "reason"},
		{"3", "", "2021-08-12", "photos/ok1.jpg", "", "user_id: missing"},
		{"4", "rj-date", "12/08/2021", "photos/ok1.jpg", "",
			`user_created_at: "12/08/2021" is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)`},
		{"5", "rj-nophoto", "2021-08-12", "photos/missing.jpg", "",
			"photo: file not found: " + filepath.Join(dir, "photos", "missing.jpg")},
		{"6", "rj-gif", "2021-08-12", "photos/cat.gif", "", gif},
		{"7", "rj-ok-1", "2021-08-12", "photos/ok1.jpg", "", "user_id: duplicate of line 2"},
		{"8", "rj-big", "2021-08-12", "photos/big.jpg", "2213",
			"Smile ID 2213: photo is larger than the limit of 5242880 bytes (HTTP 400)"},
		{"9", "rj-taken", "2021-08-12", "photos/ok2.png", "2209",
			"Smile ID 2209: User already enrolled (HTTP 400): conflict: this store never sent this user, so someone else enrolled it"},
		{"10", `rj,"quoted"`, "2021-08-12", "photos/cat.gif", "", gif},
	}
	got := e2eReadRejects(t, rejects)
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rejects file:\n%s\nwant:\n%s", e2eFormatRecords(got), e2eFormatRecords(want))
	}
	// The quoting is standard CSV.
	data, _ := os.ReadFile(rejects)
	if !strings.HasPrefix(string(data), "line,user_id,user_created_at,photo,code,reason\n") ||
		!strings.Contains(string(data), "\n10,\"rj,\"\"quoted\"\"\",2021-08-12,photos/cat.gif,,") {
		t.Errorf("rejects file is not the expected CSV:\n%s", data)
	}
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, []string{"rj-taken", "rj-ok-1", "rj-ok-2"})
	requests := st.Stats.Requests

	// A re-run rewrites the file with this run's rejects: the same rows, and
	// Smile ID's refusals are not sent again for the same photo.
	r = c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0",
		"--rejects", rejects, "--max-photo-bytes", strconv.Itoa(6<<20))
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 10, Skipped: 2, Rejected: 8})
	got = e2eReadRejects(t, rejects)
	if len(got) != len(want) {
		t.Fatalf("re-run rejects file:\n%s", e2eFormatRecords(got))
	}
	for i := range want {
		if !slices.Equal(got[i][:5], want[i][:5]) {
			t.Errorf("re-run rejects record %q, want %q", got[i][:5], want[i][:5])
		}
	}
	if !strings.Contains(got[6][5], "refused before with this same photo") {
		t.Errorf("re-run reason for rj-big %q does not say it was refused before", got[6][5])
	}
	if n := sb.State(t).Stats.Requests; n != requests {
		t.Errorf("the re-run sent %d requests, want none", n-requests)
	}
}

// e2eReadRejects reads a rejects file, records sorted by line.
func e2eReadRejects(t testing.TB, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("rejects file: %v\n%s", err, data)
	}
	if len(recs) > 1 {
		body := recs[1:]
		sort.SliceStable(body, func(i, j int) bool {
			a, _ := strconv.Atoi(body[i][0])
			b, _ := strconv.Atoi(body[j][0])
			return a < b
		})
	}
	return recs
}

func e2eFormatRecords(recs [][]string) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %q\n", r)
	}
	return b.String()
}

// TestE2EStatusAndReport: status (text and JSON) and report (CSV and JSON
// lines, filtered by state) describe the store.
func TestE2EStatusAndReport(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "rep", 5)
	data, _ := os.ReadFile(m)
	data = append(data, "rep-bad-date,yesterday,photos/rep-0001.jpg\nrep-no-photo,2021-08-12,photos/none.jpg\n"...)
	e2eWriteFile(t, m, data)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 1)

	r := c.Run("status")
	e2eWantCode(t, r, 0)
	for _, want := range []string{
		"store     " + c.Store() + "\n",
		"partner   " + e2ePartner + "\n",
		"base URL  " + sb.URL + "\n",
		"enrolled  5\n", "rejected  2\n", "failed    0\n", "pending   0\n", "total     7\n",
		"last run  #1 finished",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.Stdout)
		}
	}

	r = c.Run("status", "--json")
	e2eWantCode(t, r, 0)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.Stdout)
	}
	wantCounts := map[string]int{"enrolled": 5, "rejected": 2, "failed": 0, "pending": 0}
	if st.PartnerID != e2ePartner || st.BaseURL != sb.URL || st.Total != 7 || st.Store != c.Store() ||
		fmt.Sprint(st.Counts) != fmt.Sprint(wantCounts) {
		t.Errorf("status --json = %+v", st)
	}
	if st.LastRun == nil || st.LastRun.ID != 1 || st.LastRun.Outcome != "finished" || st.LastRun.Counts["rows"] != 7 ||
		st.LastRun.Counts["enrolled"] != 5 || st.LastRun.Counts["rejected"] != 2 || st.LastRun.Ended.IsZero() {
		t.Errorf("status --json last run = %+v", st.LastRun)
	}

	// CSV.
	r = c.Run("report")
	e2eWantCode(t, r, 0)
	recs, err := csv.NewReader(strings.NewReader(r.Stdout)).ReadAll()
	if err != nil {
		t.Fatalf("report: %v\n%s", err, r.Stdout)
	}
	if want := []string{"user_id", "state", "result_code", "result_text", "smile_job_id", "attempts", "error", "updated_at", "job_id", "photo_note"}; !slices.Equal(recs[0], want) {
		t.Errorf("report header %q, want %q", recs[0], want)
	}
	if len(recs) != 8 {
		t.Fatalf("report has %d records, want 7:\n%s", len(recs)-1, r.Stdout)
	}
	states := map[string]string{}
	for _, rec := range recs[1:] {
		states[rec[0]] = rec[1]
		if _, err := time.Parse(time.RFC3339, rec[7]); err != nil {
			t.Errorf("report: updated_at %q: %v", rec[7], err)
		}
		switch rec[1] {
		case "enrolled":
			if rec[2] != "0840" || rec[3] != "Enroll User" || rec[4] == "" || rec[5] != "1" || rec[6] != "" || rec[8] == "" {
				t.Errorf("report: enrolled record %q (want Smile ID's job_id last)", rec)
			}
		case "rejected":
			if rec[2] != "" || rec[4] != "" || rec[8] != "" || rec[5] != "0" || rec[6] == "" {
				t.Errorf("report: rejected record %q", rec)
			}
		default:
			t.Errorf("report: record %q", rec)
		}
	}
	for _, id := range ids {
		if states[id] != "enrolled" {
			t.Errorf("report: %s is %q, want enrolled", id, states[id])
		}
	}
	if states["rep-bad-date"] != "rejected" || states["rep-no-photo"] != "rejected" {
		t.Errorf("report states %v", states)
	}

	// JSON lines, and the state filter in both formats.
	all := e2eReport(t, c)
	if len(all) != 7 {
		t.Errorf("report --format jsonl: %d records, want 7", len(all))
	}
	rej := e2eReport(t, c, "--state", "rejected")
	if len(rej) != 2 || rej[0].State != "rejected" || rej[1].State != "rejected" {
		t.Errorf("report --state rejected: %+v", rej)
	}
	for _, rec := range rej {
		if rec.UserID == "rep-no-photo" && !strings.Contains(rec.Error, "photo: file not found") {
			t.Errorf("report: rep-no-photo error %q", rec.Error)
		}
	}
	if f := e2eReport(t, c, "--state", "failed"); len(f) != 0 {
		t.Errorf("report --state failed: %+v", f)
	}
	r = c.Run("report", "--state", "enrolled", "--format", "csv")
	e2eWantCode(t, r, 0)
	if n := strings.Count(r.Stdout, "\n"); n != 6 || strings.Contains(r.Stdout, "rejected") {
		t.Errorf("report --state enrolled:\n%s", r.Stdout)
	}

	// Usage errors, and a store that does not exist.
	e2eWantCode(t, c.Run("report", "--state", "bogus"), 2)
	e2eWantCode(t, c.Run("report", "--format", "xml"), 2)
	r = c.Run("status", "--store", filepath.Join(c.Dir, "nope.db"))
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "store not found") {
		t.Errorf("status on a missing store:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "nope.db")); err == nil {
		t.Errorf("status created a store")
	}
}

// TestE2EValidateSamples: validate accepts samples/manifest.csv and prints
// one line per bad row of samples/bad/manifest.csv; it writes nothing.
func TestE2EValidateSamples(t *testing.T) {
	t.Parallel()
	c := e2eNewCLI(t, "")
	good, _ := filepath.Abs(filepath.Join("samples", "manifest.csv"))
	bad, _ := filepath.Abs(filepath.Join("samples", "bad", "manifest.csv"))

	r := c.Run("validate", "--manifest", good)
	e2eWantCode(t, r, 0)
	if r.Stdout != "8 rows: 8 valid, 0 invalid\n" {
		t.Errorf("validate samples/manifest.csv:\n%s", r)
	}

	r = c.Run("validate", "--manifest", bad)
	e2eWantCode(t, r, 1)
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	var got []int
	for _, l := range lines[:len(lines)-1] {
		var n int
		if _, err := fmt.Sscanf(l, "line %d: ", &n); err != nil {
			t.Errorf("validate: %q is not a `line N: ...` line", l)
		}
		got = append(got, n)
	}
	want := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
	if !slices.Equal(got, want) {
		t.Errorf("validate reported lines %v, want %v:\n%s", got, want, r.Stdout)
	}
	if last := lines[len(lines)-1]; last != "18 rows: 2 valid, 16 invalid" {
		t.Errorf("validate count line %q", last)
	}
	for _, want := range []string{
		"line 9: photo-not-found: photo: file not found: ",
		"line 10: photo-is-folder: photo: is a folder",
		"line 15: good-001: user_id: duplicate of line 2",
		"line 17: too-few-fields: row: only 2 fields",
		"line 19", // no such line
	} {
		has := e2eHasLinePrefix(r.Stdout, want)
		if has != (want != "line 19") {
			t.Errorf("validate output: line starting %q present = %v:\n%s", want, has, r.Stdout)
		}
	}

	r = c.Run("validate", "--manifest", bad, "--json")
	e2eWantCode(t, r, 1)
	var doc struct {
		Problems []problem `json:"problems"`
		Rows     int       `json:"rows"`
		Valid    int       `json:"valid"`
		Invalid  int       `json:"invalid"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, r.Stdout)
	}
	if doc.Rows != 18 || doc.Valid != 2 || doc.Invalid != 16 || len(doc.Problems) != 16 {
		t.Errorf("validate --json: %d rows, %d valid, %d invalid, %d problems", doc.Rows, doc.Valid, doc.Invalid, len(doc.Problems))
	}
	entries, _ := os.ReadDir(c.Dir)
	if len(entries) != 0 {
		t.Errorf("validate wrote into its working folder: %v", entries)
	}
}

// TestE2EManifestFromStdin: --manifest - reads standard input, with photo
// paths relative to the working folder.
func TestE2EManifestFromStdin(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "stdin", 7)
	data, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	r := c.RunStdin(string(data), "validate", "--manifest", "-")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stdout, "7 rows: 7 valid, 0 invalid") {
		t.Errorf("validate -:\n%s", r)
	}
	r = c.RunStdin(string(data), "run", "--manifest", "-", "--json", "--rate", "0")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 7, Enrolled: 7})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
	// And again: everything skipped.
	r = c.RunStdin(string(data), "run", "--manifest", "-", "--json", "--rate", "0")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 7, Skipped: 7})
}

// TestE2EMissingColumn: a manifest without a required column exits 2 naming
// the column, before anything is sent or any store is made.
func TestE2EMissingColumn(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "a.jpg"), e2eJPEG(t, 1))
	m := filepath.Join(c.Dir, "m.csv")
	e2eWriteCSV(t, m, [][]string{{"user_id", "user_created_at", "picture"}, {"col-1", "2021-08-12", "a.jpg"}})
	for _, args := range [][]string{
		{"run", "--manifest", m, "--no-progress"},
		{"run", "--manifest", m, "--no-progress", "--dry-run"},
		{"validate", "--manifest", m},
	} {
		r := c.Run(args...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, `missing required column "photo"`) {
			t.Errorf("%s: stderr does not name the column:\n%s", args[0], r.Stderr)
		}
	}
	e2eWriteCSV(t, m, [][]string{{"photo", "name"}, {"a.jpg", "x"}})
	r := c.Run("run", "--manifest", m, "--no-progress")
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, `missing required columns "user_id", "user_created_at"`) {
		t.Errorf("stderr does not name both columns:\n%s", r.Stderr)
	}
	if _, err := os.Stat(c.Store()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a manifest that cannot be used created the store (stat: %v)", err)
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("the sandbox got %d requests, want none", n)
	}
}

// TestE2EPlainHTTPRefused: plain http to a host that is not loopback is
// refused before any connection (a proxy in the environment would see it).
func TestE2EPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	c := e2eNewCLI(t, "http://example.com")
	proxy := "http://" + ln.Addr().String()
	c.Env["HTTP_PROXY"], c.Env["HTTPS_PROXY"], c.Env["http_proxy"], c.Env["https_proxy"] = proxy, proxy, proxy, proxy
	m, _ := e2eManifest(t, c.Dir, "http", 2)
	for _, args := range [][]string{
		{"run", "--manifest", m, "--no-progress"},
		{"run", "--manifest", m, "--no-progress", "--base-url", "http://203.0.113.7:8080/"},
		{"run", "--manifest", m, "--no-progress", "--dry-run"},
	} {
		r := c.Run(args...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, "use https") || !strings.Contains(r.Stderr, "plain http") {
			t.Errorf("stderr does not say to use https:\n%s", r)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections were made", n)
	}
	if _, err := os.Stat(c.Store()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused run created the store (stat: %v)", err)
	}
}

// e2eHasLinePrefix reports whether some line of s starts with prefix.
func e2eHasLinePrefix(s, prefix string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func e2eBool(b bool) int {
	if b {
		return 1
	}
	return 0
}
