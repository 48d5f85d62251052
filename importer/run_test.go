package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/event"
	"bulkenroll/importer/observe"
	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/testkit"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// checkEnrolledOnce checks that the sandbox enrolled every id exactly once
// and nobody else.
func checkEnrolledOnce(t *testing.T, sb *sandbox.Server, ids []string) {
	t.Helper()
	got := sb.Enrolled()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("sandbox enrolled %s %d times, want 1", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Errorf("sandbox enrolled %d users, want %d", len(got), len(ids))
	}
}

// checkStates checks the store's state of every id.
func checkStates(t *testing.T, st *store.Store, ids []string, want store.State) {
	t.Helper()
	for _, id := range ids {
		if rec := userRecord(t, st, id); rec.State != want {
			t.Errorf("%s: state %s (%s), want %s", id, rec.State, rec.Error, want)
		}
	}
}

func TestRunCleanImportAndRerun(t *testing.T) {
	f := newFixture(t, 12)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	var rejects bytes.Buffer
	opts := fastOptions()
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
	sum, err := run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 12, Enrolled: 12})
	if !sum.OK() || sum.RunID == 0 {
		t.Errorf("summary %+v: want OK with a run ID", sum)
	}
	checkEnrolledOnce(t, sb, f.ids())
	if cnt.Requests() != 12 {
		t.Errorf("%d requests, want 12", cnt.Requests())
	}
	jobIDs := map[string]bool{}
	for i, id := range f.ids() {
		rec := userRecord(t, st, id)
		if rec.State != store.Enrolled || rec.ResultCode != "0840" || rec.Attempts != 1 || rec.SmileJobID == "" {
			t.Errorf("%s: record %+v", id, rec)
		}
		if jobIDs[rec.SmileJobID] {
			t.Errorf("%s: SmileJobID %s seen twice", id, rec.SmileJobID)
		}
		jobIDs[rec.SmileJobID] = true
		if rec.Line != i+2 || rec.Run != sum.RunID || rec.CreatedAt != f.rows[i].created || rec.Photo != f.rows[i].photo {
			t.Errorf("%s: line %d run %d created %q photo %q", id, rec.Line, rec.Run, rec.CreatedAt, rec.Photo)
		}
		if rec.PhotoSHA256 != "" {
			t.Errorf("%s: PhotoSHA256 %q on an enrolled row (only refused photos are hashed)", id, rec.PhotoSHA256)
		}
		if rec.UpdatedAt.IsZero() || rec.Error != "" {
			t.Errorf("%s: UpdatedAt %v, Error %q", id, rec.UpdatedAt, rec.Error)
		}
	}
	if got := readCSV(t, rejects.Bytes()); len(got) != 1 || strings.Join(got[0], ",") != "line,user_id,user_created_at,photo,code,reason" {
		t.Errorf("rejects = %q, want the header alone", got)
	}
	last, ok, err := st.LastRun()
	if err != nil || !ok || last.ID != sum.RunID || last.Outcome != "finished" || last.Counts["enrolled"] != 12 || last.Ended.IsZero() {
		t.Errorf("LastRun = %+v, %v, %v", last, ok, err)
	}

	// Re-run: everything is skipped without a request, and without even
	// reading the photos (they are gone).
	if err := os.RemoveAll(filepath.Join(f.dir, "photos")); err != nil {
		t.Fatal(err)
	}
	sum2, err := run(t, context.Background(), path, st, c, fastOptions())
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	wantSummary(t, sum2, importer.Summary{Rows: 12, Skipped: 12})
	if cnt.Requests() != 12 {
		t.Errorf("the second run sent %d requests, want none", cnt.Requests()-12)
	}
	if sum2.RunID <= sum.RunID {
		t.Errorf("run IDs %d then %d", sum.RunID, sum2.RunID)
	}
	for _, id := range f.ids() {
		if rec := userRecord(t, st, id); rec.State != store.Enrolled || rec.Attempts != 1 || rec.Run != sum.RunID {
			// A skipped row's record is left as the run that enrolled it wrote it.
			t.Errorf("%s after the re-run: %+v", id, rec)
		}
	}
}

func TestRunBadRows(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok1.jpg"), photoBytes(t, "jpeg", 1))
	writeFile(t, filepath.Join(dir, "ok2.png"), photoBytes(t, "png", 2))
	writeFile(t, filepath.Join(dir, "anim.gif"), []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	writeFile(t, filepath.Join(dir, "empty.jpg"), nil)
	if err := os.Mkdir(filepath.Join(dir, "folder.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 129)
	manifestText := strings.Join([]string{
		"user_id,user_created_at,photo",
		"good-1,2021-08-12,ok1.jpg",               // 2
		",2021-08-12,ok1.jpg",                     // 3 missing user_id
		"bad-date,2021-02-30,ok1.jpg",             // 4
		"no-photo,2021-08-12,missing.jpg",         // 5
		"gif,2021-08-12,anim.gif",                 // 6
		"good-2,2021-08-12T15:14:43Z,ok2.png",     // 7
		"future,2999-01-01,ok1.jpg",               // 8
		long + ",2021-08-12,ok1.jpg",              // 9
		"short-row,2021-08-12",                    // 10 too few fields
		"empty,2021-08-12,empty.jpg",              // 11
		"folder,2021-08-12,folder.jpg",            // 12
		"no-date,,ok1.jpg",                        // 13
		"\"bad\"quote,2021-08-12,ok1.jpg",         // 14 CSV syntax error
		"good-3,2021-08-12 10:00:00+0200,ok1.jpg", // 15
		"nophotocol,2021-08-12,",                  // 16
		"",
	}, "\n")
	path := filepath.Join(dir, "m.csv")
	writeFile(t, path, []byte(manifestText))
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	var rejects, progress bytes.Buffer
	opts := fastOptions()
	opts.Observers = []event.Observer{observe.NewProgress(&progress, false, time.Hour), observe.NewRejects(&rejects)}
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 15, Enrolled: 3, Rejected: 12})
	if sum.OK() {
		t.Errorf("summary OK with rejected rows")
	}
	checkEnrolledOnce(t, sb, []string{"good-1", "good-2", "good-3"})
	if cnt.Requests() != 3 {
		t.Errorf("%d requests, want 3 (bad rows are not sent)", cnt.Requests())
	}
	got := readCSV(t, rejects.Bytes())
	if len(got) == 0 || strings.Join(got[0], ",") != "line,user_id,user_created_at,photo,code,reason" {
		t.Fatalf("rejects header %q", got)
	}
	want := []struct {
		line, id, created, photo, reason string
	}{
		{"3", "", "2021-08-12", "ok1.jpg", "user_id: missing"},
		{"4", "bad-date", "2021-02-30", "ok1.jpg", "user_created_at"},
		{"5", "no-photo", "2021-08-12", "missing.jpg", "photo"},
		{"6", "gif", "2021-08-12", "anim.gif", "GIF"},
		{"8", "future", "2999-01-01", "ok1.jpg", "future"},
		{"9", long, "2021-08-12", "ok1.jpg", "user_id"},
		{"10", "short-row", "2021-08-12", "", "row"},
		{"11", "empty", "2021-08-12", "empty.jpg", "empty"},
		{"12", "folder", "2021-08-12", "folder.jpg", "folder"},
		{"13", "no-date", "", "ok1.jpg", "user_created_at: missing"},
		{"14", "", "", "", "row"},
		{"16", "nophotocol", "2021-08-12", "", "photo: missing"},
	}
	rows := got[1:]
	if len(rows) != len(want) {
		t.Fatalf("rejects has %d rows, want %d:\n%s", len(rows), len(want), rejects.String())
	}
	// Workers check photos concurrently: the file is in the order rows were
	// settled, not necessarily line order.
	sort.SliceStable(rows, func(a, b int) bool { return atoiOr0(rows[a][0]) < atoiOr0(rows[b][0]) })
	for i, w := range want {
		r := rows[i]
		if len(r) != 6 {
			t.Errorf("rejects row %d has %d fields", i, len(r))
			continue
		}
		if r[0] != w.line || (w.id != "" && r[1] != w.id) || (w.created != "" && r[2] != w.created) || (w.photo != "" && r[3] != w.photo) {
			t.Errorf("rejects row %d = %q, want line %s user %q created %q photo %q", i, r, w.line, w.id, w.created, w.photo)
		}
		if r[4] != "" {
			t.Errorf("line %s: code %q, want empty for a row refused before sending", r[0], r[4])
		}
		if !strings.Contains(strings.ToLower(r[5]), strings.ToLower(w.reason)) {
			t.Errorf("line %s: reason %q, want it to mention %q", r[0], r[5], w.reason)
		}
	}
	for _, id := range []string{"bad-date", "no-photo", "gif", "future", "empty", "folder", "no-date"} {
		rec := userRecord(t, st, id)
		if rec.State != store.Rejected || rec.Error == "" || rec.Attempts != 0 || rec.ResultCode != "" {
			t.Errorf("%s: record %+v", id, rec)
		}
	}
	// Rows without a usable user_id are kept under their line.
	for _, line := range []int{3, 9, 14} {
		rec, ok, err := st.Get(store.RowKey(line))
		if err != nil || !ok || rec.State != store.Rejected || rec.Line != line {
			t.Errorf("row record of line %d: %+v, %v, %v", line, rec, ok, err)
		}
	}
	counts, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.Enrolled] != 3 || counts[store.Rejected] != 12 || counts[store.Pending] != 0 || counts[store.Failed] != 0 {
		t.Errorf("store counts %v", counts)
	}
	if !strings.Contains(progress.String(), "line 4: bad-date: rejected:") {
		t.Errorf("progress output lacks the line of a rejected row:\n%s", progress.String())
	}
}

func TestRunDuplicates(t *testing.T) {
	f := newFixture(t, 3)
	f.rows = append(f.rows, f.rows[0]) // line 5 repeats line 2
	f.rows = append(f.rows, mrow{id: f.rows[1].id, created: "2020-01-01", photo: f.rows[2].photo})
	path := f.write(t)
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	var rejects bytes.Buffer
	opts := fastOptions()
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 5, Enrolled: 3, Rejected: 2})
	checkEnrolledOnce(t, sb, f.ids()[:3])
	rows := readCSV(t, rejects.Bytes())[1:]
	if len(rows) != 2 || rows[0][0] != "5" || !strings.Contains(rows[0][5], "duplicate of line 2") ||
		rows[1][0] != "6" || !strings.Contains(rows[1][5], "duplicate of line 3") {
		t.Errorf("rejects = %q", rows)
	}
	// The duplicates do not touch the first rows' records.
	checkStates(t, st, f.ids()[:3], store.Enrolled)
	if rec := userRecord(t, st, f.rows[1].id); rec.Line != 3 || rec.CreatedAt != "2021-08-12T15:14:43Z" {
		t.Errorf("the duplicate changed the first row's record: %+v", rec)
	}
	if _, ok, _ := st.Get(store.RowKey(5)); !ok {
		t.Errorf("no record for the duplicate on line 5")
	}

	// The same manifest again: the duplicates are found again, although the
	// first rows are now skipped.
	sum, err = run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 5, Skipped: 3, Rejected: 2})

	// Without the duplicates, their row records are gone.
	f.rows = f.rows[:3]
	path = f.write(t)
	sum, err = run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 3})
	if counts, _ := st.Counts(); counts[store.Rejected] != 0 || counts[store.Enrolled] != 3 {
		t.Errorf("store counts %v after a run without duplicates", counts)
	}
}

// TestRunDuplicatesBusyPool puts duplicates next to each other while the
// workers are busy, so that both rows are planned before either is marked.
func TestRunDuplicatesBusyPool(t *testing.T) {
	f := newFixture(t, 40)
	var rows []mrow
	for i, r := range f.rows {
		rows = append(rows, r)
		if i%5 == 4 {
			rows = append(rows, r, r)
		}
	}
	f.rows = rows
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 20 * time.Millisecond})
	st := newStore(t)
	opts := fastOptions()
	opts.Workers = 2
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 56, Enrolled: 40, Rejected: 16})
	ids := newFixtureIDs(40)
	checkEnrolledOnce(t, sb, ids)
	checkStates(t, st, ids, store.Enrolled)
	if cnt.Requests() != 40 {
		t.Errorf("%d requests for 40 users: duplicates were sent", cnt.Requests())
	}
}

// newFixtureIDs returns the user IDs newFixture(n) makes.
func newFixtureIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i+1)
	}
	return out
}

// TestRunTransientFaults imports through every kind of transient fault.
func TestRunTransientFaults(t *testing.T) {
	f := newFixture(t, 16)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{
		FailRate: 0.3, ThrottleRate: 0.1, DropBeforeRate: 0.05, DropAfterRate: 0.05, Seed: 7,
	})
	st := newStore(t)
	opts := fastOptions()
	// A try fails with probability 0.45; 16 retries make a row that fails
	// every one of them (0.45^17 each) practically impossible.
	opts.Retries = 16
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 16, Enrolled: 16})
	checkEnrolledOnce(t, sb, f.ids())
	checkStates(t, st, f.ids(), store.Enrolled)
	stats := sb.Stats()
	if stats.Failed+stats.Throttled+stats.DroppedBefore+stats.DroppedAfter == 0 {
		t.Errorf("no fault was injected: %+v", stats)
	}
	attempts := 0
	for _, id := range f.ids() {
		attempts += userRecord(t, st, id).Attempts
	}
	if attempts != cnt.Requests() || attempts != stats.Requests {
		t.Errorf("records count %d attempts; %d requests reached the server", attempts, cnt.Requests())
	}
}

// TestRunRetriesUsedUp fails every request, then lets the next run through.
func TestRunRetriesUsedUp(t *testing.T) {
	f := newFixture(t, 6)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	var failing atomic.Bool
	failing.Store(true)
	cnt.Hook = func(_ int64, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"code":"2201","error":"System Error"}`)
			return true
		}
		return false
	}
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	opts := fastOptions()
	opts.Retries = 2
	var rejects bytes.Buffer
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
	sum, err := run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 6, Failed: 6})
	if cnt.Requests() != 18 {
		t.Errorf("%d requests, want 6 rows × 3 tries", cnt.Requests())
	}
	for _, id := range f.ids() {
		rec := userRecord(t, st, id)
		if rec.State != store.Failed || rec.Attempts != 3 || !strings.Contains(rec.Error, "2201") {
			t.Errorf("%s: %+v", id, rec)
		}
	}
	if rows := readCSV(t, rejects.Bytes()); len(rows) != 1 {
		t.Errorf("failed rows went to the rejects file: %q", rows)
	}
	if last, _, _ := st.LastRun(); last.Outcome != "finished" || last.Counts["failed"] != 6 {
		t.Errorf("LastRun %+v", last)
	}

	failing.Store(false)
	sum, err = run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 6, Enrolled: 6})
	checkEnrolledOnce(t, sb, f.ids())
	for _, id := range f.ids() {
		if rec := userRecord(t, st, id); rec.State != store.Enrolled || rec.Attempts != 4 || rec.ResultCode != "0840" || rec.Error != "" {
			t.Errorf("%s: %+v", id, rec)
		}
	}
}

// TestRunAlreadyEnrolledNeverTried: 2209 for a user this store never sent
// is a conflict.
func TestRunAlreadyEnrolledNeverTried(t *testing.T) {
	f := newFixture(t, 3)
	path := f.write(t)
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	c := testkit.NewClient(t, hs.URL, nil)
	// Someone else enrolls user-0002 first.
	if _, err := c.Submit(context.Background(), smileid.User{UserID: "user-0002", CreatedAt: "2020-01-01", Photo: photoBytes(t, "jpeg", 99)}); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	var rejects bytes.Buffer
	opts := fastOptions()
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
	sum, err := run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 3, Enrolled: 2, Rejected: 1})
	rec := userRecord(t, st, "user-0002")
	if rec.State != store.Rejected || rec.ResultCode != "2209" || !strings.Contains(rec.Error, "conflict") || rec.Attempts != 1 {
		t.Errorf("user-0002: %+v", rec)
	}
	rows := readCSV(t, rejects.Bytes())
	if len(rows) != 2 || rows[1][0] != "3" || rows[1][1] != "user-0002" || rows[1][4] != "2209" {
		t.Errorf("rejects = %q", rows)
	}
	if sb.Enrolled()["user-0002"] != 1 {
		t.Errorf("sandbox enrollments %v", sb.Enrolled())
	}
}

// TestRunAlreadyEnrolledAfterUnknownOutcome: the first try enrolls but its
// answer is lost; the retry's 2209 means enrolled.
func TestRunAlreadyEnrolledAfterUnknownOutcome(t *testing.T) {
	t.Run("same run", func(t *testing.T) {
		f := newFixture(t, 4)
		path := f.write(t)
		sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{DropAfterRate: 1})
		st := newStore(t)
		sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		wantSummary(t, sum, importer.Summary{Rows: 4, Enrolled: 4})
		checkEnrolledOnce(t, sb, f.ids())
		if cnt.Requests() != 8 {
			t.Errorf("%d requests, want 2 per row", cnt.Requests())
		}
		for _, id := range f.ids() {
			rec := userRecord(t, st, id)
			if rec.State != store.Enrolled || rec.ResultCode != "2209" || rec.Attempts != 2 {
				t.Errorf("%s: %+v", id, rec)
			}
		}
	})
	t.Run("next run", func(t *testing.T) {
		f := newFixture(t, 4)
		path := f.write(t)
		sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
		c := testkit.NewClient(t, hs.URL, func(_ *smileid.Config, o *smileid.ClientOptions) {
			// The first request of each user reaches the server, which
			// enrolls; the answer is lost on the way back.
			o.Transport = &testkit.Flaky{Base: http.DefaultTransport, After: func(n int64) error {
				if n <= 4 {
					return io.ErrUnexpectedEOF
				}
				return nil
			}}
		})
		st := newStore(t)
		opts := fastOptions()
		opts.Retries = 0
		opts.Workers = 1
		sum, err := run(t, context.Background(), path, st, c, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		wantSummary(t, sum, importer.Summary{Rows: 4, Failed: 4})
		checkStates(t, st, f.ids(), store.Failed)
		sum, err = run(t, context.Background(), path, st, c, opts)
		if err != nil {
			t.Fatalf("second Run: %v", err)
		}
		wantSummary(t, sum, importer.Summary{Rows: 4, Enrolled: 4})
		checkEnrolledOnce(t, sb, f.ids())
		for _, id := range f.ids() {
			if rec := userRecord(t, st, id); rec.State != store.Enrolled || rec.ResultCode != "2209" || rec.Attempts != 2 {
				t.Errorf("%s: %+v", id, rec)
			}
		}
	})
}

// TestRunAccountRefusal stops at an account-level refusal.
func TestRunAccountRefusal(t *testing.T) {
	cases := []struct {
		name, refuse, key, code string
	}{
		{"product not activated", "2214", testKey, "2214"},
		{"production not enabled", "2220", testKey, "2220"},
		{"unauthorized", "2205", testKey, "2205"},
		{"wrong key", "", "not-" + testKey, "2205"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const rows = 60
			f := newFixture(t, rows)
			path := f.write(t)
			sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Refuse: c.refuse})
			st := newStore(t)
			cl := testkit.NewClient(t, hs.URL, func(cfg *smileid.Config, _ *smileid.ClientOptions) { cfg.APIKey = smileid.Secret(c.key) })
			var rejects bytes.Buffer
			opts := fastOptions()
			opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
			sum, err := run(t, context.Background(), path, st, cl, opts)
			ae := testkit.MustAs[*importer.AccountError](t, err)
			if ae.API == nil || ae.API.Code != c.code {
				t.Fatalf("AccountError %+v, want code %s", ae, c.code)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error shows the key: %v", err)
			}
			wantSummary(t, sum, importer.Summary{Rows: rows, Pending: rows})
			if n := cnt.Requests(); n > 2*opts.Workers {
				t.Errorf("%d requests after an account-level refusal; want at most %d", n, 2*opts.Workers)
			}
			if len(sb.Enrolled()) != 0 {
				t.Errorf("sandbox enrolled %v", sb.Enrolled())
			}
			if got := readCSV(t, rejects.Bytes()); len(got) != 1 {
				t.Errorf("rows were rejected: %q", got)
			}
			counts, err := st.Counts()
			if err != nil {
				t.Fatal(err)
			}
			// Only the rows sent have a record (pending, saying why); the
			// rows never reached have none, and nothing is rejected.
			if counts[store.Pending] != cnt.Requests() || counts[store.Rejected] != 0 || counts[store.Enrolled] != 0 || counts[store.Failed] != 0 {
				t.Errorf("store counts %v, want %d pending (the rows sent)", counts, cnt.Requests())
			}
			// A row marked but never sent does not count an attempt.
			tried := 0
			for _, id := range f.ids() {
				tried += recordOrNone(t, st, id).Attempts
			}
			if tried != cnt.Requests() {
				t.Errorf("records count %d attempts, %d requests were sent", tried, cnt.Requests())
			}
			if last, _, _ := st.LastRun(); last.Outcome != "stopped" {
				t.Errorf("run outcome %q, want stopped", last.Outcome)
			}
		})
	}
}

// TestRunRateLimit checks the request rate at the server.
func TestRunRateLimit(t *testing.T) {
	const rate, workers, rows = 20, 8, 36
	burst := min(max(1, rate/10), workers) // as the gate sizes it
	f := newFixture(t, rows)
	path := f.write(t)
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	opts := fastOptions()
	opts.Rate, opts.Workers = rate, workers
	start := time.Now()
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	elapsed := time.Since(start)
	wantSummary(t, sum, importer.Summary{Rows: rows, Enrolled: rows})
	// Arrivals, not admissions: a loaded machine delays some into the same
	// second, so a quarter second's worth of slack (a limit per worker
	// would be 8 times over).
	if got := sb.Stats().MaxPerSecond; got > rate+burst+rate/4 {
		t.Errorf("%d requests within one second, want at most %d", got, rate+burst+rate/4)
	}
	if min := time.Duration(float64(rows-burst) / rate * float64(time.Second)); elapsed < min*9/10 {
		t.Errorf("%d requests at %d/s took only %v", rows, rate, elapsed)
	}
}

// TestRunThrottlePausesPool: a 429 with Retry-After pauses every worker.
// throttleHook answers the requests from number from to number to
// (excluded) with a 429 and a Retry-After of one second, and stores when
// the first of them came in first.
func throttleHook(from, to int64, first *atomic.Int64) func(int64, []byte, http.ResponseWriter, *http.Request) bool {
	return func(n int64, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		if n < from || n >= to {
			return false
		}
		first.CompareAndSwap(0, time.Now().UnixNano())
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":"Too many requests"}`)
		return true
	}
}

// TestRunSparseThrottleDelaysOnlyItsRow: one 429 is noise, not a quota: it
// delays only its own row (for its Retry-After) and uses up no retry; the
// rest of the pool goes on.
func TestRunSparseThrottleDelaysOnlyItsRow(t *testing.T) {
	const rows, workers = 40, 4
	f := newFixture(t, rows)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 10 * time.Millisecond})
	var throttledAt atomic.Int64
	cnt.Hook = throttleHook(3, 4, &throttledAt)
	st := newStore(t)
	opts := fastOptions()
	opts.Workers = workers
	opts.Retries = 0 // a 429 uses up no retry
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: rows, Enrolled: rows})
	checkEnrolledOnce(t, sb, f.ids())
	t0 := time.Unix(0, throttledAt.Load())
	during, after := 0, 0
	for _, at := range cnt.Arrivals() {
		switch d := at.Sub(t0); {
		case d > 0 && d < 900*time.Millisecond:
			during++
		case d >= 900*time.Millisecond:
			after++
		}
	}
	// The pool does not pause: the other rows go on during the second;
	// only the throttled row waits it out.
	if during < rows/2 {
		t.Errorf("%d requests arrived during the throttled row's second, want the pool to go on", during)
	}
	if after < 1 {
		t.Errorf("the throttled row was not sent again after its Retry-After")
	}
	if cnt.Requests() != rows+1 {
		t.Errorf("%d requests, want %d", cnt.Requests(), rows+1)
	}
}

// TestRunThrottleEpisodePausesPool: a run of 429s is an episode: the whole
// pool pauses for the Retry-After, and no row fails, whatever --retries.
func TestRunThrottleEpisodePausesPool(t *testing.T) {
	const rows, workers = 40, 4
	f := newFixture(t, rows)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 10 * time.Millisecond})
	var firstThrottle atomic.Int64
	cnt.Hook = throttleHook(3, 9, &firstThrottle)
	st := newStore(t)
	opts := fastOptions()
	opts.Workers = workers
	opts.Retries = 1
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: rows, Enrolled: rows})
	checkEnrolledOnce(t, sb, f.ids())
	t0 := time.Unix(0, firstThrottle.Load())
	during := 0
	for _, at := range cnt.Arrivals() {
		if d := at.Sub(t0); d > 200*time.Millisecond && d < 900*time.Millisecond {
			during++
		}
	}
	// The episode began within a few answers of the first 429 and pauses
	// the pool for a second; without it, 40 rows take about 100ms.
	if during > 0 {
		t.Errorf("%d requests arrived during the episode's pause, want none", during)
	}
	if cnt.Requests() != rows+6 {
		t.Errorf("%d requests, want %d", cnt.Requests(), rows+6)
	}
}

func TestRunDryRun(t *testing.T) {
	f := newFixture(t, 5)
	f.rows = append(f.rows, mrow{id: "bad", created: "2021-13-01", photo: f.rows[0].photo}, f.rows[1])
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	c := testkit.NewClient(t, hs.URL, nil)
	var rejects bytes.Buffer
	opts := fastOptions()
	opts.DryRun = true
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))

	// Without a store.
	sum, err := run(t, context.Background(), path, nil, c, opts)
	if err != nil {
		t.Fatalf("dry Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 7, Rejected: 2, Pending: 5, DryRun: true})
	if cnt.Requests() != 0 {
		t.Errorf("a dry run sent %d requests", cnt.Requests())
	}
	rows := readCSV(t, rejects.Bytes())
	if len(rows) != 3 || !strings.Contains(rows[2][5], "duplicate of line 3") {
		t.Errorf("rejects = %q", rows)
	}

	// With a store holding earlier results: counted as skipped, nothing written.
	st := newStore(t)
	if _, err := run(t, context.Background(), path, st, c, fastOptions()); err != nil {
		t.Fatal(err)
	}
	sent := cnt.Requests()
	writeFile(t, filepath.Join(f.dir, "manifest.csv"), append(must(os.ReadFile(path)), []byte("newcomer,2021-08-12,"+f.rows[0].photo+"\n")...))
	before := records(t, st)
	lastBefore, _, _ := st.LastRun()
	sum, err = run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("dry Run with a store: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 8, Skipped: 5, Rejected: 2, Pending: 1, DryRun: true})
	if sum.RunID != 0 {
		t.Errorf("dry run got run ID %d", sum.RunID)
	}
	if cnt.Requests() != sent {
		t.Errorf("a dry run sent %d requests", cnt.Requests()-sent)
	}
	after := records(t, st)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a dry run changed the store:\nbefore %v\nafter  %v", before, after)
	}
	if lastAfter, _, _ := st.LastRun(); lastAfter.ID != lastBefore.ID {
		t.Errorf("a dry run recorded a run: %+v", lastAfter)
	}
	if _, ok, _ := st.Get("newcomer"); ok {
		t.Errorf("a dry run saved a record for a new user")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRunNeedsStore(t *testing.T) {
	f := newFixture(t, 1)
	_, err := run(t, context.Background(), f.write(t), nil, testkit.NewClient(t, "http://127.0.0.1:1", nil), fastOptions())
	if err == nil {
		t.Fatal("Run without a store succeeded")
	}
}

// TestRunAPIRejected: a row Smile ID refused is not sent again with the
// same photo, but is with a new photo or RetryRejected.
func TestRunAPIRejected(t *testing.T) {
	f := newFixture(t, 3)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	var refuse atomic.Bool
	refuse.Store(true)
	cnt.Hook = func(_ int64, body []byte, w http.ResponseWriter, _ *http.Request) bool {
		if refuse.Load() && testkit.UserIDOf(body) == "user-0002" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"code":"2213","error":"Invalid photo: no face found"}`)
			return true
		}
		return false
	}
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	runOnce := func(opts importer.Options) (importer.Summary, [][]string) {
		t.Helper()
		var rejects bytes.Buffer
		opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
		sum, err := run(t, context.Background(), path, st, c, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return sum, readCSV(t, rejects.Bytes())[1:]
	}

	sum, rej := runOnce(fastOptions())
	wantSummary(t, sum, importer.Summary{Rows: 3, Enrolled: 2, Rejected: 1})
	if len(rej) != 1 || rej[0][0] != "3" || rej[0][4] != "2213" || !strings.Contains(rej[0][5], "no face found") {
		t.Errorf("rejects = %q", rej)
	}
	rec := userRecord(t, st, "user-0002")
	if rec.State != store.Rejected || rec.ResultCode != "2213" || rec.ResultText != "Invalid photo: no face found" || rec.Attempts != 1 || rec.PhotoSHA256 != sha256File(t, f.photoPath(1)) {
		t.Errorf("user-0002: %+v", rec)
	}

	// Same photo: not sent again, rejected again with the same code.
	sum, rej = runOnce(fastOptions())
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 2, Rejected: 1})
	if n := cnt.SentFor("user-0002"); n != 1 {
		t.Errorf("user-0002 sent %d times, want 1", n)
	}
	if len(rej) != 1 || rej[0][4] != "2213" || !strings.Contains(rej[0][5], "same photo") {
		t.Errorf("rejects = %q", rej)
	}
	if rec := userRecord(t, st, "user-0002"); rec.Attempts != 1 || rec.ResultCode != "2213" {
		t.Errorf("user-0002 after the re-run: %+v", rec)
	}

	// RetryRejected: sent again (and refused again).
	opts := fastOptions()
	opts.RetryRejected = true
	sum, _ = runOnce(opts)
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 2, Rejected: 1})
	if n := cnt.SentFor("user-0002"); n != 2 {
		t.Errorf("user-0002 sent %d times with RetryRejected, want 2", n)
	}

	// A new photo: sent again, and this time accepted.
	refuse.Store(false)
	writeFile(t, f.photoPath(1), photoBytes(t, "png", 1234))
	sum, _ = runOnce(fastOptions())
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 2, Enrolled: 1})
	rec = userRecord(t, st, "user-0002")
	if rec.State != store.Enrolled || rec.ResultCode != "0840" || rec.Attempts != 3 || rec.PhotoSHA256 != "" {
		t.Errorf("user-0002 with a new photo: %+v", rec)
	}
	checkEnrolledOnce(t, sb, f.ids())
}

// TestRunRevalidates: a row refused by validation is checked again on the
// next run.
func TestRunRevalidates(t *testing.T) {
	f := newFixture(t, 3)
	writeFile(t, f.photoPath(2), []byte("GIF89a not really"))
	path := f.write(t)
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	sum, err := run(t, context.Background(), path, st, c, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 3, Enrolled: 2, Rejected: 1})
	if rec := userRecord(t, st, "user-0003"); rec.State != store.Rejected || rec.ResultCode != "" {
		t.Errorf("user-0003: %+v", rec)
	}
	// Unchanged: still rejected, by validation again.
	sum, err = run(t, context.Background(), path, st, c, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 2, Rejected: 1})
	// Fixed: enrolled.
	writeFile(t, f.photoPath(2), photoBytes(t, "jpeg", 3))
	sum, err = run(t, context.Background(), path, st, c, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 2, Enrolled: 1})
	if rec := userRecord(t, st, "user-0003"); rec.State != store.Enrolled || rec.Attempts != 1 || rec.Error != "" {
		t.Errorf("user-0003 after the fix: %+v", rec)
	}
	checkEnrolledOnce(t, sb, f.ids())
}

// TestRunInterrupted cancels a run midway, then resumes it.
func TestRunInterrupted(t *testing.T) {
	const rows = 80
	f := newFixture(t, rows)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 15 * time.Millisecond, DropAfterRate: 0.1, FailRate: 0.1, Seed: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cnt.Hook = func(n int64, _ []byte, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 20 {
			cancel()
		}
		return false
	}
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	opts := fastOptions()
	opts.Retries = 8
	sum, err := run(t, ctx, path, st, c, opts)
	if !errors.Is(err, importer.ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	if sum.Partial {
		t.Fatalf("summary is partial: %+v", sum)
	}
	if sum.Rows != rows || sum.Enrolled+sum.Failed+sum.Pending != rows || sum.Rejected != 0 || sum.Skipped != 0 {
		t.Errorf("summary %+v: every row must be enrolled, failed or pending", sum)
	}
	if sum.Pending == 0 || sum.Enrolled == 0 {
		t.Errorf("summary %+v: want a run stopped midway", sum)
	}
	counts, err := st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	// Rows never reached have no record: the store's pending records are
	// at most the summary's pending rows.
	if counts[store.Enrolled] != sum.Enrolled || counts[store.Failed] != sum.Failed || counts[store.Pending] > sum.Pending || counts[store.Rejected] != 0 {
		t.Errorf("store counts %v disagree with the summary %+v", counts, sum)
	}
	enrolledBySandbox := sb.Enrolled()
	for _, id := range f.ids() {
		rec := recordOrNone(t, st, id)
		if rec.State == store.Enrolled && enrolledBySandbox[id] != 1 {
			t.Errorf("%s is enrolled in the store but not at the server", id)
		}
		if rec.State == store.Pending && rec.Attempts != cnt.SentFor(id) {
			t.Errorf("%s: pending with %d attempts, %d requests sent", id, rec.Attempts, cnt.SentFor(id))
		}
	}
	if last, _, _ := st.LastRun(); last.Outcome != "interrupted" {
		t.Errorf("run outcome %q", last.Outcome)
	}

	// Resume.
	cnt.Hook = nil
	sum2, err := run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	if sum2.Rows != rows || sum2.Skipped != sum.Enrolled || sum2.Enrolled != rows-sum.Enrolled {
		t.Errorf("resumed summary %+v after %+v", sum2, sum)
	}
	checkEnrolledOnce(t, sb, f.ids())
	checkStates(t, st, f.ids(), store.Enrolled)
}

// TestRunInterruptGrace cancels while slow requests are in flight and the
// grace is too short for them: they end failed (their outcome is unknown),
// and the resumed run finds them enrolled (2209 after an unknown outcome).
func TestRunInterruptGrace(t *testing.T) {
	const rows = 12
	f := newFixture(t, rows)
	path := f.write(t)
	sb, cnt, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cnt.Hook = func(n int64, _ []byte, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 4 {
			cancel()
		}
		return false
	}
	st := newStore(t)
	c := testkit.NewClient(t, hs.URL, nil)
	opts := fastOptions()
	opts.Workers = 4
	opts.Grace = 50 * time.Millisecond
	sum, err := run(t, ctx, path, st, c, opts)
	if !errors.Is(err, importer.ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: rows, Failed: 4, Pending: rows - 4})
	failed := 0
	for _, id := range f.ids() {
		rec := recordOrNone(t, st, id)
		switch rec.State {
		case store.Failed:
			failed++
			if rec.Attempts != 1 || cnt.SentFor(id) != 1 {
				t.Errorf("%s: failed with %d attempts, %d sent", id, rec.Attempts, cnt.SentFor(id))
			}
		case store.Pending:
			if rec.Attempts != 0 || cnt.SentFor(id) != 0 {
				t.Errorf("%s: pending with %d attempts, %d sent", id, rec.Attempts, cnt.SentFor(id))
			}
		default:
			t.Errorf("%s: state %s", id, rec.State)
		}
	}
	if failed != 4 {
		t.Errorf("%d rows failed, want the 4 in flight", failed)
	}
	// The server enrolled the four before the client gave up on them.
	if n := len(sb.Enrolled()); n != 4 {
		t.Errorf("sandbox enrolled %d users", n)
	}

	sb2, _, hs2 := testkit.NewSandbox(t, sandbox.Options{})
	// The new server knows what the old one enrolled.
	for id := range sb.Enrolled() {
		if _, err := testkit.NewClient(t, hs2.URL, nil).Submit(context.Background(), smileid.User{UserID: id, CreatedAt: "2021-08-12", Photo: photoBytes(t, "jpeg", 1)}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err = run(t, context.Background(), path, st, testkit.NewClient(t, hs2.URL, nil), fastOptions())
	if err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: rows, Enrolled: rows})
	checkEnrolledOnce(t, sb2, f.ids())
	for _, id := range f.ids() {
		rec := userRecord(t, st, id)
		if rec.State != store.Enrolled {
			t.Errorf("%s: %+v", id, rec)
		}
		if _, wasThere := sb.Enrolled()[id]; wasThere && (rec.ResultCode != "2209" || rec.Attempts != 2) {
			t.Errorf("%s: %+v, want enrolled by a 2209 on its second attempt", id, rec)
		}
	}
}

// TestRunCancelledBeforeStart: nothing is sent, every row is pending.
func TestRunCancelledBeforeStart(t *testing.T) {
	f := newFixture(t, 10)
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := run(t, ctx, path, st, testkit.NewClient(t, hs.URL, nil), fastOptions())
	if !errors.Is(err, importer.ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 10, Pending: 10})
	if cnt.Requests() != 0 {
		t.Errorf("%d requests after an interrupt", cnt.Requests())
	}
	for _, id := range f.ids() {
		if rec, ok, _ := st.Get(id); ok && (rec.State != store.Pending || rec.Attempts != 0) {
			t.Errorf("%s: %+v", id, rec)
		}
	}

	// From standard input the rest of the manifest is not read after an
	// interrupt: the summary says it is partial.
	opts := fastOptions()
	opts.Manifest, opts.ManifestIsFile = "-", false
	sum, err = run(t, ctx, path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if !errors.Is(err, importer.ErrInterrupted) || !sum.Partial || sum.Rows != 0 {
		t.Errorf("interrupted run from standard input: %+v, %v; want a partial summary", sum, err)
	}
}

func TestRunMaxPhotoBytes(t *testing.T) {
	f := newFixture(t, 2)
	writeFile(t, f.photoPath(1), append(photoBytes(t, "png", 2), make([]byte, 4096)...))
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	st := newStore(t)
	var rejects bytes.Buffer
	opts := fastOptions()
	opts.MaxPhotoBytes = 2048
	opts.Observers = append(opts.Observers, observe.NewRejects(&rejects))
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 2, Enrolled: 1, Rejected: 1})
	if cnt.Requests() != 1 {
		t.Errorf("%d requests", cnt.Requests())
	}
	if rows := readCSV(t, rejects.Bytes()); len(rows) != 2 || rows[1][1] != "user-0002" || !strings.Contains(rows[1][5], "2048") {
		t.Errorf("rejects = %q", rows)
	}
}

// TestRunConflictStaysConflict: a user refused with 2209 as a conflict is
// still a conflict when sent again (RetryRejected): that earlier answer was
// known, so the new 2209 is not the echo of an unknown outcome.
func TestRunConflictStaysConflict(t *testing.T) {
	f := newFixture(t, 2)
	path := f.write(t)
	_, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	c := testkit.NewClient(t, hs.URL, nil)
	if _, err := c.Submit(context.Background(), smileid.User{UserID: "user-0001", CreatedAt: "2020-01-01", Photo: photoBytes(t, "jpeg", 50)}); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	sum, err := run(t, context.Background(), path, st, c, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 2, Enrolled: 1, Rejected: 1})
	opts := fastOptions()
	opts.RetryRejected = true
	sum, err = run(t, context.Background(), path, st, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 2, Skipped: 1, Rejected: 1})
	if rec := userRecord(t, st, "user-0001"); rec.State != store.Rejected || rec.ResultCode != "2209" || rec.Attempts != 2 {
		t.Errorf("user-0001: %+v, want still rejected as a conflict", rec)
	}
}

// failingReader yields data, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestRunManifestReadError: a manifest that cannot be read to its end stops
// the run with the error, every row read so far in a known state.
func TestRunManifestReadError(t *testing.T) {
	f := newFixture(t, 30)
	path := f.write(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the manifest after the 20th row's line.
	cut := 0
	for range 21 {
		cut += bytes.IndexByte(data[cut:], '\n') + 1
	}
	diskErr := errors.New("input/output error")
	rd, err := manifest.NewReader(&failingReader{data: data[:cut], err: diskErr}, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 5 * time.Millisecond})
	st := newStore(t)
	opts := fastOptions()
	opts.Workers = 2
	sum, err := importer.Run(context.Background(), rd, st, testkit.NewClient(t, hs.URL, nil), opts)
	if !errors.Is(err, diskErr) {
		t.Fatalf("Run = %v, want the read error", err)
	}
	if sum.Rows != 20 || sum.Enrolled+sum.Pending+sum.Failed+sum.Rejected+sum.Skipped != sum.Rows {
		t.Errorf("summary %+v: every row read must be accounted for", sum)
	}
	enrolled := sb.Enrolled()
	for _, id := range f.ids()[:20] {
		rec, ok, err := st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if enrolled[id] == 1 && (!ok || rec.State != store.Enrolled) {
			t.Errorf("%s enrolled at the server, but the store has %+v", id, rec)
		}
		if ok && rec.State != store.Enrolled && rec.State != store.Pending {
			t.Errorf("%s: %+v", id, rec)
		}
	}
	if last, _, _ := st.LastRun(); last.Outcome != "failed" {
		t.Errorf("run outcome %q, want failed", last.Outcome)
	}
}

// TestRunProgress runs with both progress displays and checks what they
// print: report lines with the total, and a line per rejected row.
func TestRunProgress(t *testing.T) {
	for _, bar := range []bool{false, true} {
		t.Run(fmt.Sprint("bar=", bar), func(t *testing.T) {
			f := newFixture(t, 6)
			f.rows = append(f.rows, mrow{id: "bad", created: "yesterday", photo: f.rows[0].photo})
			path := f.write(t)
			_, _, hs := testkit.NewSandbox(t, sandbox.Options{Latency: 30 * time.Millisecond})
			var out bytes.Buffer
			p := observe.NewProgress(&out, bar, 10*time.Millisecond)
			opts := fastOptions()
			opts.Workers = 1
			opts.Observers = []event.Observer{p}
			opts.ManifestIsFile = true
			opts.Count = func() (int, error) { return manifest.Count(path) }
			sum, err := run(t, context.Background(), path, newStore(t), testkit.NewClient(t, hs.URL, nil), opts)
			if err != nil {
				t.Fatal(err)
			}
			wantSummary(t, sum, importer.Summary{Rows: 7, Enrolled: 6, Rejected: 1})
			text := out.String()
			if !strings.Contains(text, "line 8: bad: rejected: user_created_at") {
				t.Errorf("no line for the rejected row in:\n%s", text)
			}
			if !bar && !strings.Contains(text, "/7 rows") {
				t.Errorf("no report line with the total in:\n%s", text)
			}
			if bar && !strings.Contains(text, "enrolled 6") {
				t.Errorf("the bar's last state lacks the final counts:\n%s", text)
			}
		})
	}
}

// atoiOr0 is strconv.Atoi without the error, for sorting test rows.
func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestRunThrottleLimit: throttles use up no retry, but a row throttled for
// longer than ThrottleLimit ends failed, and its reason says why.
func TestRunThrottleLimit(t *testing.T) {
	f := newFixture(t, 1)
	path := f.write(t)
	_, cnt, hs := testkit.NewSandbox(t, sandbox.Options{})
	var first atomic.Int64
	cnt.Hook = throttleHook(1, 1<<62, &first)
	st := newStore(t)
	opts := fastOptions()
	opts.Retries = 0
	opts.ThrottleLimit = 1200 * time.Millisecond
	sum, err := run(t, context.Background(), path, st, testkit.NewClient(t, hs.URL, nil), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantSummary(t, sum, importer.Summary{Rows: 1, Failed: 1})
	if n := cnt.Requests(); n < 2 {
		t.Errorf("%d requests: the 429 used up the retries (0), want it retried", n)
	}
	rec := userRecord(t, st, f.ids()[0])
	if rec.State != store.Failed || !strings.Contains(rec.Error, "--throttle-limit") {
		t.Errorf("record %+v, want failed saying the throttle limit", rec)
	}
}
