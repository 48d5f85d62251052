//go:build unix

package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
)

// End-to-end tests of `bulkenroll verify` against the sandbox: an import
// enrolls the users first, then verify authenticates them.

// e2eVerifySummary is verify's --json summary.
type e2eVerifySummary struct {
	Checked          int     `json:"checked"`
	Authenticated    int     `json:"authenticated"`
	NotAuthenticated int     `json:"not_authenticated"`
	PendingReview    int     `json:"pending_review"`
	Errors           int     `json:"errors"`
	Seconds          float64 `json:"seconds"`
}

// e2eVerifyJSON reads verify's --json summary.
func e2eVerifyJSON(t testing.TB, r e2eResult) e2eVerifySummary {
	t.Helper()
	var s e2eVerifySummary
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), &s); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r)
	}
	return s
}

// e2eVerifyReport reads `report --verify` (CSV) by user_id.
func e2eVerifyReport(t testing.TB, c *e2eCLI) map[string]map[string]string {
	t.Helper()
	r := c.Run("report", "--verify")
	e2eWantCode(t, r, 0)
	recs, err := csv.NewReader(strings.NewReader(r.Stdout)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("report --verify: %v\n%s", err, r)
	}
	want := []string{"user_id", "job_id", "smile_job_id", "result_code", "result_text", "outcome", "compare", "confidence", "updated_at"}
	if !slices.Equal(recs[0][:len(want)], want) {
		t.Fatalf("report --verify columns %q, want %q first", recs[0], want)
	}
	out := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, col := range recs[0] {
			m[col] = rec[i]
		}
		out[rec[0]] = m
	}
	return out
}

// e2eEnrolled imports n users into a new CLI's store and returns the CLI,
// the manifest and the users.
func e2eEnrolled(t *testing.T, sb *e2eSandbox, prefix string, n int) (*e2eCLI, string, []string) {
	t.Helper()
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, prefix, n)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)
	return c, m, ids
}

// e2eWantUploadedOnce fails unless every authentication job the sandbox
// saw was prepared once and uploaded once, and there are want of them.
func e2eWantUploadedOnce(t testing.TB, st sandbox.State, want int) {
	t.Helper()
	if len(st.AuthJobs) != want {
		t.Errorf("the sandbox has %d authentication jobs, want %d", len(st.AuthJobs), want)
	}
	for id, j := range st.AuthJobs {
		if j.Uploads != 1 || j.Prepares != 1 {
			t.Errorf("job %s (user %s): %d prepares, %d uploads, want 1 each", id, j.UserID, j.Prepares, j.Uploads)
		}
	}
}

// TestE2EVerifySample: a sample of enrolled users authenticates (exit 0),
// the same seed picks the same users, and report --verify lists them.
func TestE2EVerifySample(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--auth-delay", "0")
	c, m, ids := e2eEnrolled(t, sb, "vsample", 12)

	r := c.Run("verify", "--manifest", m, "--sample", "4", "--seed", "11", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	var keys []string
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		keys = append(keys, tok.(string))
		var v json.RawMessage
		dec.Decode(&v)
	}
	if want := []string{"checked", "authenticated", "not_authenticated", "pending_review", "errors", "seconds"}; !slices.Equal(keys, want) {
		t.Errorf("summary keys %q, want %q", keys, want)
	}
	if s := e2eVerifyJSON(t, r); s.Checked != 4 || s.Authenticated != 4 || s.Seconds <= 0 {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(r.Stderr, "only checks that the enrollment exists and matches its own photo") {
		t.Errorf("stderr does not say the selfie is the enrollment photo:\n%s", r.Stderr)
	}
	st := sb.State(t)
	e2eWantUploadedOnce(t, st, 4)
	first := map[string]bool{}
	for _, j := range st.AuthJobs {
		if !slices.Contains(ids, j.UserID) || j.Outcome != sandbox.JobAuthenticated {
			t.Errorf("job %+v", j)
		}
		first[j.UserID] = true
	}
	rep := e2eVerifyReport(t, c)
	for u := range first {
		if rec := rep[u]; rec["outcome"] != "authenticated" || rec["result_code"] != "1220" || rec["smile_job_id"] == "" || rec["job_id"] == "" {
			t.Errorf("report --verify %s: %v", u, rec)
		}
	}

	// The same seed picks the same users.
	e2eWantCode(t, c.Run("verify", "--manifest", m, "--sample", "4", "--seed", "11", "--no-progress"), 0)
	again := map[string]int{}
	for _, j := range sb.State(t).AuthJobs {
		again[j.UserID]++
	}
	for u, n := range again {
		if !first[u] || n != 2 {
			t.Errorf("seed 11 again: user %s checked %d times (first sample %v)", u, n, first)
		}
	}
}

// TestE2EVerifyRejected: users whose authentication fails show in
// report --verify as not authenticated, and verify exits 1.
func TestE2EVerifyRejected(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--auth-delay", "0", "--auth-reject-users", "vrej-0002,vrej-0005")
	c, m, _ := e2eEnrolled(t, sb, "vrej", 6)

	metrics := c.Dir + "/verify.prom"
	r := c.Run("verify", "--manifest", m, "--all", "--json", "--no-progress", "--metrics-file", metrics)
	e2eWantCode(t, r, 1)
	if s := e2eVerifyJSON(t, r); s.Checked != 6 || s.Authenticated != 4 || s.NotAuthenticated != 2 {
		t.Errorf("summary %+v", s)
	}
	prom, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`bulkenroll_verify_users{outcome="authenticated"} 4`, `bulkenroll_verify_users{outcome="not_authenticated"} 2`,
		`bulkenroll_verify_finished{outcome="finished"} 1`, `bulkenroll_verify_jobs_total 6`} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("metrics file lacks %q:\n%s", want, prom)
		}
	}
	if !strings.Contains(r.Stderr, "report --verify") {
		t.Errorf("stderr does not point to report --verify:\n%s", r.Stderr)
	}
	rep := e2eVerifyReport(t, c)
	for u, rec := range rep {
		want := "authenticated"
		if u == "vrej-0002" || u == "vrej-0005" {
			want = "not authenticated"
		}
		if rec["outcome"] != want {
			t.Errorf("report --verify %s: outcome %q, want %q (%v)", u, rec["outcome"], want, rec)
		}
	}
	e2eWantUploadedOnce(t, sb.State(t), 6)
}

// TestE2EVerifyResume: a verify interrupted while jobs are being polled
// exits 130; the next verify continues it, and no user's zip is uploaded
// twice.
func TestE2EVerifyResume(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--auth-delay", "3s")
	c, m, _ := e2eEnrolled(t, sb, "vresume", 8)

	p := c.Start("verify", "--manifest", m, "--all", "--workers", "3", "--no-progress")
	e2eWaitUntil(t, 30*time.Second, "some uploads", func() bool { return sb.State(t).Auth.Uploads >= 2 })
	p.Signal(syscall.SIGINT)
	r := p.Wait()
	e2eWantCode(t, r, 130)
	before := sb.State(t)
	if len(before.AuthJobs) == 8 && before.Auth.Jobs[sandbox.JobAuthenticated] == 8 {
		t.Skip("the interrupt came after every job was done")
	}

	r = c.Run("verify", "--manifest", m, "--all", "--workers", "3", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stderr, "continued the last verify run") {
		t.Errorf("the second verify does not say it continued the first:\n%s", r.Stderr)
	}
	st := sb.State(t)
	e2eWantUploadedOnce(t, st, 8)
	rep := e2eVerifyReport(t, c)
	if len(rep) != 8 {
		t.Errorf("report --verify lists %d users, want 8", len(rep))
	}
	for u, rec := range rep {
		if rec["outcome"] != "authenticated" {
			t.Errorf("%s: %v", u, rec)
		}
	}
}

// TestE2EVerifyWrongKey: a wrong key stops verify at once (exit 2), with
// no job prepared.
func TestE2EVerifyWrongKey(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--auth-delay", "0")
	c, m, _ := e2eEnrolled(t, sb, "vkey", 10)
	c.Env["SMILE_API_KEY"] = "a-wrong-key"
	r := c.Run("verify", "--manifest", m, "--all", "--workers", "2", "--json", "--no-progress")
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "2205") {
		t.Errorf("stderr lacks 2205:\n%s", r.Stderr)
	}
	st := sb.State(t)
	if st.Auth.Prepared != 0 || st.Auth.Unauthorized == 0 || st.Auth.Unauthorized > 2 {
		t.Errorf("sandbox auth stats %+v: want 1 or 2 refused prepares and none prepared", st.Auth)
	}
	if strings.Contains(r.Stderr, "a-wrong-key") || strings.Contains(r.Stdout, "a-wrong-key") {
		t.Error("the key was printed")
	}
}

// TestE2EVerifyNotEnrolled: users the store does not hold as enrolled are
// named and never submitted.
func TestE2EVerifyNotEnrolled(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--auth-delay", "0")
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "vnot", 6)
	// Rows 2 and 4 point to photos that are not there: rejected by the import.
	recs := [][]string{{"user_id", "user_created_at", "photo"}}
	for i, id := range ids {
		photo := "photos/" + id + ".jpg"
		if i%3 == 2 {
			photo = "photos/" + id + ".png"
		}
		if i == 1 || i == 3 {
			photo = "photos/missing.jpg"
		}
		recs = append(recs, []string{id, "2021-08-12T15:14:43Z", photo})
	}
	e2eWriteCSV(t, m, recs)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 1)

	users := c.Dir + "/users.txt"
	e2eWriteFile(t, users, []byte("# two enrolled, one rejected, one unknown\n"+ids[0]+"\n\n"+ids[1]+"\n"+ids[2]+"\nnobody\n"))
	r := c.Run("verify", "--manifest", m, "--users", users, "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	if s := e2eVerifyJSON(t, r); s.Checked != 2 || s.Authenticated != 2 {
		t.Errorf("summary %+v", s)
	}
	for _, want := range []string{ids[1] + ": skipped: not enrolled", "nobody: skipped: not in the manifest"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	r = c.Run("verify", "--manifest", m, "--all", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	if s := e2eVerifyJSON(t, r); s.Checked != 4 {
		t.Errorf("--all summary %+v, want the 4 enrolled users", s)
	}
	for _, j := range sb.State(t).AuthJobs {
		if j.UserID == ids[1] || j.UserID == ids[3] {
			t.Errorf("user %s, not enrolled, was submitted", j.UserID)
		}
	}

	// A dry run, without credentials: the plan, nothing sent or written.
	before := len(sb.State(t).AuthJobs)
	key, partner := c.Env["SMILE_API_KEY"], c.Env["SMILE_PARTNER_ID"]
	delete(c.Env, "SMILE_API_KEY")
	delete(c.Env, "SMILE_PARTNER_ID")
	r = c.Run("verify", "--manifest", m, "--all", "--dry-run")
	e2eWantCode(t, r, 0)
	c.Env["SMILE_API_KEY"], c.Env["SMILE_PARTNER_ID"] = key, partner
	if !strings.Contains(r.Stderr, "4 users would be checked") || len(sb.State(t).AuthJobs) != before {
		t.Errorf("dry run:\n%s", r.Stderr)
	}

	// --log-format json: every line on standard error is one JSON object.
	r = c.Run("verify", "--manifest", m, "--users", users, "--log-format", "json")
	e2eWantCode(t, r, 0)
	msgs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", line, err)
		}
		msgs[rec["msg"].(string)]++
	}
	if msgs["summary"] != 1 || msgs["user"] != 2 || msgs["skipped"] != 2 {
		t.Errorf("JSON log records %v, want a summary, 2 users, 2 skipped", msgs)
	}
}
