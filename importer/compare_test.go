package importer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"bulkenroll/importer"
	"bulkenroll/importer/smileid"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// fakeComparer answers compare jobs as answer says, recording each
// request's job_id, image count and first bytes of each image.
type fakeComparer struct {
	mu     sync.Mutex
	jobs   map[string][]string // user -> job_ids sent, in order
	images map[string]int      // user -> images of the last request
	answer func(user, jobID string, n int) (*smileid.CompareResult, error)
}

func (f *fakeComparer) Compare(_ context.Context, req smileid.CompareRequest) (*smileid.CompareResult, error) {
	f.mu.Lock()
	n := len(f.jobs[req.UserID])
	f.jobs[req.UserID] = append(f.jobs[req.UserID], req.JobID)
	f.images[req.UserID] = 2 + len(req.Liveness)
	f.mu.Unlock()
	return f.answer(req.UserID, req.JobID, n)
}

func matched(user, jobID string) *smileid.CompareResult {
	return &smileid.CompareResult{Code: "0840", Text: "Face Match", Status: "approved", JobID: jobID, UserID: user, SmileJobID: "42"}
}

// compareFixture writes a compare manifest of users u0..u(n-1), each with
// a selfie, a comparison image and 4 liveness frames.
func compareFixture(t *testing.T, n int) string {
	dir := t.TempDir()
	lines := []string{"user_id,selfie,liveness,comparison_image,comparison_image_type"}
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		var live []string
		for k := range 4 {
			p := fmt.Sprintf("%s-l%d.jpg", id, k)
			writeFile(t, filepath.Join(dir, p), photoBytes(t, "jpeg", 100*i+k))
			live = append(live, p)
		}
		writeFile(t, filepath.Join(dir, id+"-s.jpg"), photoBytes(t, "jpeg", 100*i+50))
		writeFile(t, filepath.Join(dir, id+"-c.png"), photoBytes(t, "png", 100*i+51))
		lines = append(lines, fmt.Sprintf("%s,%s-s.jpg,%s,%s-c.png,ID_PHOTO", id, id, strings.Join(live, ";"), id))
	}
	path := filepath.Join(dir, "compare.csv")
	writeFile(t, path, []byte(strings.Join(lines, "\n")+"\n"))
	return path
}

func runCompare(t *testing.T, path string, st *store.Store, fc *fakeComparer, opts importer.Options) importer.Summary {
	t.Helper()
	rd, err := manifest.OpenProduct(path, manifest.ProductCompare)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := st.BindProduct(store.Compare); err != nil {
		t.Fatal(err)
	}
	opts.Compare = importer.CompareOptions{Comparer: fc}
	opts.Manifest = path
	sum, err := importer.Run(context.Background(), rd, st, nil, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return sum
}

// TestCompareExactlyOnce: a request whose answer is lost is sent again
// under the same job_id; the 2215 that follows fails the row naming the
// job_id, and later runs never send it under another; a row refused (0841)
// and sent again after its images change carries a new job_id.
func TestCompareExactlyOnce(t *testing.T) {
	path := compareFixture(t, 3)
	st := newStore(t)
	lost := &smileid.TransportError{Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}
	exists := &smileid.APIError{Status: 400, Code: "2215", Text: "Job already exists. Did you mean to set the retry flag to true?", Endpoint: smileid.EndpointCompare}
	noMatch := &smileid.APIError{Status: 200, Code: "0841", Text: "No Match", Endpoint: smileid.EndpointCompare}
	fc := &fakeComparer{jobs: map[string][]string{}, images: map[string]int{}}
	fc.answer = func(user, jobID string, n int) (*smileid.CompareResult, error) {
		switch {
		case user == "u1" && n == 0:
			return nil, lost // reached Smile ID, answer lost
		case user == "u1":
			return nil, exists
		case user == "u2" && n == 0:
			return &smileid.CompareResult{Code: "0841", Text: "No Match", Status: "rejected"}, noMatch
		}
		return matched(user, jobID), nil
	}
	sum := runCompare(t, path, st, fc, fastOptions())
	wantSummary(t, sum, importer.Summary{Rows: 3, Enrolled: 1, Rejected: 1, Failed: 1})

	u0 := userRecord(t, st, "u0")
	if u0.State != store.Enrolled || u0.ResultCode != "0840" || u0.JobID != fc.jobs["u0"][0] || fc.images["u0"] != 6 {
		t.Errorf("u0: %+v, %d images", u0, fc.images["u0"])
	}
	u1 := userRecord(t, st, "u1")
	if len(fc.jobs["u1"]) != 2 || fc.jobs["u1"][0] != fc.jobs["u1"][1] {
		t.Fatalf("u1 sent under %v, want the same job_id twice", fc.jobs["u1"])
	}
	job1 := fc.jobs["u1"][0]
	if u1.State != store.Failed || !strings.Contains(u1.Error, "check job_id "+job1) || u1.InFlightJobID != job1 {
		t.Errorf("u1: %+v, want failed naming job_id %s, still in flight", u1, job1)
	}
	u2 := userRecord(t, st, "u2")
	if u2.State != store.Rejected || u2.ResultCode != "0841" || u2.InFlightJobID != "" || u2.Generation != 1 {
		t.Errorf("u2: %+v, want rejected 0841, its job closed", u2)
	}

	// Again: u1 only ever under its job_id; u2 not sent (same images).
	sum = runCompare(t, path, st, fc, fastOptions())
	wantSummary(t, sum, importer.Summary{Rows: 3, Skipped: 1, Rejected: 1, Failed: 1})
	for _, j := range fc.jobs["u1"] {
		if j != job1 {
			t.Errorf("u1 sent under another job_id %s (first %s)", j, job1)
		}
	}
	if len(fc.jobs["u2"]) != 1 {
		t.Errorf("u2 sent again with the same images: %v", fc.jobs["u2"])
	}

	// u2's liveness frame changes: a new job, a new job_id.
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, "u2-l3.jpg"), photoBytes(t, "jpeg", 9999), 0o644); err != nil {
		t.Fatal(err)
	}
	runCompare(t, path, st, fc, fastOptions())
	if j := fc.jobs["u2"]; len(j) != 2 || j[0] == j[1] {
		t.Errorf("u2 after its images changed: job_ids %v, want a new one", j)
	}
	if u2 := userRecord(t, st, "u2"); u2.State != store.Enrolled {
		t.Errorf("u2: %+v", u2)
	}
}
