//go:build unix

package main

// End-to-end tests of what the store holds and what a run says about it
// (issue 16): a full store (the summary is what the store saved, the run
// stops, status does not call it killed), a refused run writes nothing, a
// store is bound by its first answer from Smile ID, and the store's folder
// and live file are checked before the first request.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bulkenroll/store"
)

// truthManifest writes a manifest of n rows that all use one photo (a
// large manifest costs one file), and returns its path and user IDs.
func truthManifest(t *testing.T, dir, prefix string, n int) (string, []string) {
	t.Helper()
	e2eWriteFile(t, filepath.Join(dir, "photos", prefix+".jpg"), e2eJPEG(t, 7))
	records := [][]string{{"user_id", "user_created_at", "photo"}}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i+1)
		records = append(records, []string{ids[i], "2021-08-12", "photos/" + prefix + ".jpg"})
	}
	path := filepath.Join(dir, prefix+".csv")
	e2eWriteCSV(t, path, records)
	return path, ids
}

// truthRunLimited runs bulkenroll with args under a file size limit of
// blocks (ulimit -f: 512- or 1024-byte blocks, as the shell counts them).
// The binary itself must turn the limit into an error, not die of SIGXFSZ.
func truthRunLimited(t *testing.T, c *e2eCLI, blocks int, args ...string) e2eResult {
	t.Helper()
	script := fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, blocks)
	r := c.StartProgram("/bin/sh", nil, append([]string{"-c", script, c.bin}, args...)...).Wait()
	r.Program, r.Args = "bulkenroll", args
	return r
}

// truthReportCounts counts `report --run N` by state.
func truthReportCounts(t *testing.T, c *e2eCLI, run int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, rec := range e2eReport(t, c, "--run", fmt.Sprint(run)) {
		counts[rec.State]++
	}
	return counts
}

// truthWantSummaryIsStore fails the test unless the summary's enrolled,
// rejected and failed counts are what `report --run 1` lists, and its
// pending rows include the report's.
func truthWantSummaryIsStore(t *testing.T, c *e2eCLI, sum e2eSummary) {
	t.Helper()
	got := truthReportCounts(t, c, 1)
	if sum.Enrolled != got["enrolled"] || sum.Rejected != got["rejected"] || sum.Failed != got["failed"] || sum.Pending < got["pending"] {
		t.Errorf("summary %+v, but the store holds %v for run 1", sum, got)
	}
}

// truthFullStore checks a run that filled its store: exit 2 with a message
// naming the store, the summary is what the store holds, status does not
// call the run killed, and the next run (with room) enrolls every user once.
func truthFullStore(t *testing.T, sb *e2eSandbox, c *e2eCLI, r e2eResult, m string, ids []string, makeRoom func()) {
	t.Helper()
	e2eCheckSane(t, r)
	if r.Code == 0 {
		t.Fatalf("the store never filled: make the limit smaller\n%s", r)
	}
	e2eWantCode(t, r, 2)
	sum := e2eParseSummary(t, r)
	t.Logf("full store: %+v; the sandbox got %d requests", sum, sb.State(t).Stats.Requests)
	for _, want := range []string{"stopped: the store could not be written", c.Store(), "not saved"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if sum.Rows != len(ids) || sum.Pending == 0 {
		t.Errorf("summary %+v: want %d rows, some pending", sum, len(ids))
	}
	truthWantSummaryIsStore(t, c, sum)
	if sent := sb.State(t).Stats.Requests; sent >= len(ids) {
		t.Errorf("the sandbox got %d requests for %d rows: the run did not stop sending", sent, len(ids))
	}

	st := c.Run("status")
	e2eWantCode(t, st, 0)
	if strings.Contains(st.Stdout, "killed") {
		t.Errorf("status calls the run killed:\n%s", st)
	}
	if !strings.Contains(st.Stdout, "last run  #1 failed") && !strings.Contains(st.Stdout, "ended without recording its end") {
		t.Errorf("status does not say how run 1 ended:\n%s", st)
	}

	// With room again, the next run does the rest: the answers not saved
	// come back as 2209, believed because the marks say outcome unknown.
	makeRoom()
	r = c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "8")
	e2eWantCode(t, r, 0)
	sum2 := e2eParseSummary(t, r)
	if sum2.Enrolled+sum2.Skipped != len(ids) || sum2.Skipped != sum.Enrolled {
		t.Errorf("second run %+v: want the %d rows of the first run skipped and the rest enrolled", sum2, sum.Enrolled)
	}
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	e2eWantAllEnrolled(t, c, ids)
}

// TestStoreFullFileSizeLimit: a run whose store hits a file size limit
// (ulimit -f) stops sending, exits 2, and its summary is what the store
// holds; a store whose creation hits the limit leaves no file behind.
func TestStoreFullFileSizeLimit(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := truthManifest(t, c.Dir, "fsize", 3000)

	// Creation: the limit is below a new store's first pages.
	r := truthRunLimited(t, c, 8, "run", "--manifest", m, "--json", "--no-progress", "--rate", "0")
	e2eCheckSane(t, r)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, c.Store()) {
		t.Errorf("the error does not name the store:\n%s", r)
	}
	if _, err := os.Stat(c.Store()); !os.IsNotExist(err) {
		t.Errorf("a store whose creation failed is left behind (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(c.Dir, ".store.db*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("a run without a store sent %d requests", n)
	}

	r = truthRunLimited(t, c, 512, "run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "8")
	truthFullStore(t, sb, c, r, m, ids, func() {})
}

// TestStoreFullDisk: the same on a full file system (a small tmpfs; the
// test needs to be allowed to mount one).
func TestStoreFullDisk(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	disk := filepath.Join(c.Dir, "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestStoreFullFileSizeLimit covers the same", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", disk).Run() })
	c.Env["BULKENROLL_STORE"] = filepath.Join(disk, "store.db")
	m, ids := truthManifest(t, c.Dir, "enospc", 3000)

	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "8")
	if !strings.Contains(r.Stderr, "no space left on device") {
		t.Errorf("the run does not say the disk is full:\n%s", r)
	}
	truthFullStore(t, sb, c, r, m, ids, func() {
		if out, err := exec.Command("mount", "-o", "remount,size=64m", disk).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v: %s", err, out)
		}
	})
}

// TestStoreRefusedRunWritesNothing: a run refused by a check of its store
// or of an output path exits 2 before sending anything and leaves the
// store byte for byte as it was.
func TestStoreRefusedRunWritesNothing(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "refused", 6)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)
	sharded := filepath.Join(c.Dir, "shard.db")
	ms, _ := e2eManifest(t, c.Dir, "refused-shard", 6)
	e2eWantCode(t, c.Run("run", "--manifest", ms, "--no-progress", "--rate", "0", "--shard", "0/2", "--store", sharded), 0)
	sent := sb.State(t).Stats.Requests

	damaged := filepath.Join(c.Dir, "damaged.db")
	data, err := os.ReadFile(c.Store())
	if err != nil {
		t.Fatal(err)
	}
	data = append([]byte(nil), data...)
	data[16] ^= 0xff // the first meta page's magic
	e2eWriteFile(t, damaged, data)
	liveDir := filepath.Join(c.Dir, "livedir.db")
	e2eWriteFile(t, liveDir, readFile(t, c.Store()))
	if err := os.Mkdir(store.LivePath(liveDir), 0o700); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		store string
		env   map[string]string
		args  []string
		want  string
	}{
		{"wrong partner", c.Store(), map[string]string{"SMILE_PARTNER_ID": "another-partner"}, nil, "store belongs to another partner or endpoint"},
		{"wrong base URL", c.Store(), map[string]string{"SMILE_BASE_URL": "http://127.0.0.1:1"}, nil, "store belongs to another partner or endpoint"},
		{"wrong shard", sharded, nil, []string{"--shard", "1/2"}, "store belongs to another shard"},
		{"no shard on a shard's store", sharded, nil, nil, "store belongs to another shard"},
		{"shard on a whole store", c.Store(), nil, []string{"--shard", "1/2"}, "store belongs to another shard"},
		{"damaged header", damaged, nil, nil, "not a bulkenroll store, or a damaged one"},
		{"rejects folder missing", c.Store(), nil, []string{"--rejects", filepath.Join(c.Dir, "no", "such", "r.csv")}, "--rejects"},
		{"live file is a folder", liveDir, nil, nil, store.LivePath(liveDir)},
	} {
		before := e2eSHA256(t, tc.store)
		cc := *c
		cc.Env = map[string]string{}
		for k, v := range c.Env {
			cc.Env[k] = v
		}
		for k, v := range tc.env {
			cc.Env[k] = v
		}
		cc.Env["BULKENROLL_STORE"] = tc.store
		r := cc.Run(append([]string{"run", "--manifest", m, "--no-progress", "--rate", "0"}, tc.args...)...)
		e2eCheckSane(t, r)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: stderr lacks %q:\n%s", tc.name, tc.want, r)
		}
		if after := e2eSHA256(t, tc.store); after != before {
			t.Errorf("%s: the refused run changed the store", tc.name)
		}
	}
	if n := sb.State(t).Stats.Requests; n != sent {
		t.Errorf("refused runs sent %d requests", n-sent)
	}
}

// readFile returns the content of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// truthBinding is the binding `status --json` shows.
func truthBinding(t *testing.T, c *e2eCLI) (partner, baseURL string) {
	t.Helper()
	r := c.Run("status", "--json")
	e2eWantCode(t, r, 0)
	var s struct {
		PartnerID string `json:"partner_id"`
		BaseURL   string `json:"base_url"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	return s.PartnerID, s.BaseURL
}

// TestStoreBoundByFirstAnswer: a first run that gets no answer from Smile
// ID for any row (a wrong partner ID: 2205; a wrong base URL: a 404 page)
// leaves its store unbound, so the corrected run uses it; the first answer
// binds it for good.
func TestStoreBoundByFirstAnswer(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html><body><h1>404 Not Found</h1></body></html>")
	}))
	t.Cleanup(page.Close)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "bindfirst", 8)
	args := []string{"run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "2"}

	c.Env["SMILE_PARTNER_ID"] = "a-wrong-partner"
	r := c.Run(args...)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "2205") {
		t.Errorf("the wrong partner's run does not stop on 2205:\n%s", r)
	}
	if p, u := truthBinding(t, c); p != "" || u != "" {
		t.Errorf("after a run refused with 2205 the store is bound to %q at %q, want unbound", p, u)
	}

	c.Env["SMILE_PARTNER_ID"] = e2ePartner
	c.Env["SMILE_BASE_URL"] = page.URL
	r = c.Run(args...)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "--base-url") {
		t.Errorf("the wrong base URL's run does not say so:\n%s", r)
	}
	if p, u := truthBinding(t, c); p != "" || u != "" {
		t.Errorf("after a run that got a 404 page the store is bound to %q at %q, want unbound", p, u)
	}

	c.Env["SMILE_BASE_URL"] = sb.URL
	r = c.Run(args...)
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: len(ids), Enrolled: len(ids)})
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	if p, u := truthBinding(t, c); p != e2ePartner || u != sb.URL {
		t.Errorf("after a run with answers the store is bound to %q at %q, want %q at %q", p, u, e2ePartner, sb.URL)
	}
	c.Env["SMILE_PARTNER_ID"] = "a-wrong-partner"
	r = c.Run(args...)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "store belongs to another partner or endpoint") {
		t.Errorf("a bound store takes another partner:\n%s", r)
	}
}

// TestStoreOutputPaths: a store whose folder is missing, or whose live
// status file cannot be written, is refused before anything is sent,
// naming the path, and nothing is created.
func TestStoreOutputPaths(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "outputs", 3)
	missing := filepath.Join(c.Dir, "no-such-folder", "store.db")
	r := c.Run("run", "--manifest", m, "--no-progress", "--store", missing)
	e2eCheckSane(t, r)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, missing) {
		t.Errorf("the error does not name the store:\n%s", r)
	}
	// A live status file that cannot be written: refused before the store
	// is even created.
	fresh := filepath.Join(c.Dir, "fresh.db")
	if err := os.Mkdir(store.LivePath(fresh), 0o700); err != nil {
		t.Fatal(err)
	}
	r = c.Run("run", "--manifest", m, "--no-progress", "--store", fresh)
	e2eCheckSane(t, r)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, store.LivePath(fresh)) {
		t.Errorf("the error does not name the live status file:\n%s", r)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused run created its store (%v)", err)
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("the runs sent %d requests", n)
	}
}
