package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/testkit"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// fakeAPI is an in-memory Smile ID for the pipeline: it counts prepares
// and uploads per job_id and answers job_status as told.
type fakeAPI struct {
	mu       sync.Mutex
	prepares map[string]int
	uploads  map[string]int
	users    map[string]string // job_id -> user
	polls    int
	// reject: users whose job fails; pending: users left under review;
	// gone: users Smile ID has no enrollment for (2210 on upload).
	reject, pending, gone map[string]bool
	// account, when set, is the code every prepare gets (2205 ...).
	account string
	// onUpload runs after each upload (a test interrupts the run there).
	onUpload func()
	// loseAnswers: that many first prepare answers are lost after the job
	// was made (a time-out).
	loseAnswers int
	// throttle: that many first prepares are answered 429.
	throttle int
	// zips are the zips built, by job_id.
	zips map[string]smileid.AuthZip
}

func newFake() *fakeAPI {
	return &fakeAPI{prepares: map[string]int{}, uploads: map[string]int{}, users: map[string]string{},
		reject: map[string]bool{}, pending: map[string]bool{}, gone: map[string]bool{}}
}

func (f *fakeAPI) PrepareUpload(_ context.Context, p smileid.Prepare) (*smileid.Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.account != "" {
		return nil, &smileid.APIError{Status: 401, Code: f.account, Text: "refused"}
	}
	if f.throttle > 0 {
		f.throttle--
		return nil, &smileid.APIError{Status: 429, RetryAfter: time.Millisecond}
	}
	if f.gone[p.UserID] {
		return nil, &smileid.APIError{Status: 400, Code: "2210", Text: "No enrolled user found"}
	}
	if f.prepares[p.JobID] > 0 && !p.Retry {
		return nil, &smileid.APIError{Status: 400, Code: "2215", Text: "Job already exists. Did you mean to set the retry flag to true?"}
	}
	f.prepares[p.JobID]++
	f.users[p.JobID] = p.UserID
	if f.loseAnswers > 0 {
		f.loseAnswers--
		return nil, &smileid.TransportError{Err: context.DeadlineExceeded}
	}
	raw := fmt.Sprintf(`{"upload_url":"mem://%s","smile_job_id":"%010d","code":"2202"}`, p.JobID, len(f.users))
	return &smileid.Upload{UploadURL: "mem://" + p.JobID, SmileJobID: fmt.Sprintf("%010d", len(f.users)), Code: "2202", Raw: json.RawMessage(raw)}, nil
}

func (f *fakeAPI) BuildAuthZip(z smileid.AuthZip) ([]byte, error) {
	if len(z.Selfie.Data) == 0 {
		return nil, fmt.Errorf("no selfie")
	}
	f.mu.Lock()
	if f.zips == nil {
		f.zips = map[string]smileid.AuthZip{}
	}
	f.zips[z.JobID] = z
	f.mu.Unlock()
	return []byte("zip:" + z.JobID), nil
}

func (f *fakeAPI) Upload(_ context.Context, url string, zip []byte) error {
	f.mu.Lock()
	f.uploads[strings.TrimPrefix(url, "mem://")]++
	hook := f.onUpload
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (f *fakeAPI) JobStatus(_ context.Context, user, job string) (*smileid.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	if f.uploads[job] == 0 {
		return &smileid.JobStatus{ResultMessage: "No zip uploaded"}, nil
	}
	res := &smileid.JobResult{ResultCode: "1220", ResultText: "Authenticated", SmileJobID: "0000000001", ConfidenceValue: "99",
		Actions: map[string]string{smileid.CompareAction: "Completed"}}
	js := &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res}
	switch {
	case f.reject[user]:
		res.ResultCode, res.ResultText, res.Actions[smileid.CompareAction] = "0821", "Failed Authentication", "Failed"
		js.JobSuccess = false
	case f.pending[user]:
		res.ResultCode, res.ResultText = "0824", "Provisional Authentication - Under Review"
	}
	return js, nil
}

// fixture is a manifest of n users and a store holding the first enrolled
// of them enrolled.
func fixture(t *testing.T, n, enrolled int) (manifestPath string, st *store.Store) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("user_id,user_created_at,photo\n")
	for i := range n {
		name := fmt.Sprintf("p%d.jpg", i)
		if err := os.WriteFile(filepath.Join(dir, name), testkit.Photo(t, "jpeg", i), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "u%d,2024-01-01,%s\n", i, name)
	}
	manifestPath = filepath.Join(dir, "m.csv")
	if err := os.WriteFile(manifestPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := range enrolled {
		var rec store.Record
		rec.UserID = fmt.Sprintf("u%d", i)
		rec.Enroll("0840", "Enroll User", "", "", "", time.Now())
		st.Put(rec.UserID, rec)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	return manifestPath, st
}

func runVerify(t *testing.T, ctx context.Context, path string, st *store.Store, api *fakeAPI, opts Options) (Summary, error) {
	t.Helper()
	rd, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	opts.PollDelay = func(int) time.Duration { return time.Millisecond }
	opts.BackoffBase = time.Millisecond
	return Run(ctx, rd, st, api, opts)
}

// TestSampleAuthenticates checks a sample: only enrolled users, the size
// asked for, the same users for the same seed, each job prepared and
// uploaded once and recorded done.
func TestSampleAuthenticates(t *testing.T) {
	path, st := fixture(t, 30, 20)
	api := newFake()
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{Sample: 5, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 5 || sum.Authenticated != 5 || !sum.OK() || !sum.UsedPhoto {
		t.Fatalf("summary %+v", sum)
	}
	var first []string
	_ = st.EachVerifyJob(sum.RunID, func(j store.VerifyJob) error {
		first = append(first, j.UserID)
		var n int
		fmt.Sscanf(strings.TrimPrefix(j.UserID, "u"), "%d", &n)
		if n >= 20 {
			t.Errorf("user %s is not enrolled, and was checked", j.UserID)
		}
		if j.Step != store.JobDone || j.Outcome != "authenticated" || j.ResultCode != "1220" || j.Compare != "Completed" || j.Confidence != "99" {
			t.Errorf("job %+v", j)
		}
		return nil
	})
	for job, n := range api.prepares {
		if n != 1 || api.uploads[job] != 1 {
			t.Errorf("job %s prepared %d, uploaded %d times", job, n, api.uploads[job])
		}
	}
	// Same seed: same users (in a new run, with new job IDs).
	sum2, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{Sample: 5, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	var second []string
	_ = st.EachVerifyJob(sum2.RunID, func(j store.VerifyJob) error { second = append(second, j.UserID); return nil })
	if strings.Join(first, ",") != strings.Join(second, ",") {
		t.Errorf("seed 7 picked %v, then %v", first, second)
	}
	if len(api.prepares) != 10 {
		t.Errorf("%d jobs prepared over two runs, want 10", len(api.prepares))
	}
}

// TestUsersFileSkipsNotEnrolled checks --users: users not enrolled or not
// listed are named and never submitted.
func TestUsersFileSkipsNotEnrolled(t *testing.T) {
	path, st := fixture(t, 6, 3)
	api := newFake()
	users, err := ReadUsers(strings.NewReader("# picked\nu1\n\nu4\nu1\nnobody\n"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{Users: users}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 1 || sum.Authenticated != 1 || len(sum.Skipped) != 2 {
		t.Fatalf("summary %+v", sum)
	}
	for _, u := range api.users {
		if u != "u1" {
			t.Errorf("%s was submitted", u)
		}
	}
	if !strings.Contains(sum.Skipped[0].Reason+sum.Skipped[1].Reason, "not enrolled") || !strings.Contains(sum.Skipped[0].Reason+sum.Skipped[1].Reason, "not in the manifest") {
		t.Errorf("skips %+v", sum.Skipped)
	}
}

// TestOutcomes checks rejected, pending-review and not-enrolled users,
// and that a pending review is polled again by the next verify, never
// prepared again.
func TestOutcomes(t *testing.T) {
	path, st := fixture(t, 4, 4)
	api := newFake()
	api.reject["u1"], api.pending["u2"], api.gone["u3"] = true, true, true
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Authenticated != 1 || sum.NotAuthenticated != 2 || sum.PendingReview != 1 || sum.OK() {
		t.Fatalf("summary %+v", sum)
	}
	got := map[string]store.VerifyJob{}
	_ = st.EachVerifyJob(0, func(j store.VerifyJob) error { got[j.UserID] = j; return nil })
	if j := got["u3"]; j.ResultCode != "2210" || !strings.Contains(j.Reason, "no enrolled user") {
		t.Errorf("u3 %+v", j)
	}
	pendingJob := got["u2"].JobID
	delete(api.pending, "u2")
	sum, err = runVerify(t, context.Background(), path, st, api, Options{Refresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 1 || sum.Authenticated != 1 || sum.Refreshed != 1 {
		t.Fatalf("refresh %+v", sum)
	}
	if api.prepares[pendingJob] != 1 || api.uploads[pendingJob] != 1 {
		t.Errorf("the pending job was sent again: %d prepares, %d uploads", api.prepares[pendingJob], api.uploads[pendingJob])
	}
}

// TestInterruptResumes interrupts a run after the first uploads, then
// runs verify again: it continues the same run, and no job is prepared or
// uploaded twice.
func TestInterruptResumes(t *testing.T) {
	path, st := fixture(t, 8, 8)
	api := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	api.onUpload = func() { once.Do(cancel) }
	sum, err := runVerify(t, ctx, path, st, api, Options{Selection: Selection{All: true}, Workers: 2})
	if err != ErrInterrupted {
		t.Fatalf("first run: %v", err)
	}
	if sum.Left == 0 {
		t.Fatalf("nothing left by the interrupt: %+v", sum)
	}
	api.onUpload = nil
	sum2, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !sum2.Continued || sum2.RunID != sum.RunID || sum.Checked+sum2.Checked != 8 || sum.Authenticated+sum2.Authenticated != 8 {
		t.Fatalf("first %+v, second %+v", sum, sum2)
	}
	for job, n := range api.prepares {
		if n != 1 || api.uploads[job] != 1 {
			t.Errorf("job %s prepared %d, uploaded %d times", job, n, api.uploads[job])
		}
	}
	if len(api.prepares) != 8 {
		t.Errorf("%d jobs, want 8", len(api.prepares))
	}
}

// TestAccountStops stops at the first account-level refusal.
func TestAccountStops(t *testing.T) {
	path, st := fixture(t, 10, 10)
	api := newFake()
	api.account = "2205"
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}, Workers: 1})
	if ae := testkit.MustAs[*AccountError](t, err); ae.API.Code != "2205" {
		t.Fatalf("error %v", err)
	}
	if sum.Checked != 0 || sum.Left != 10 {
		t.Errorf("summary %+v", sum)
	}
}

// TestPollTimeoutPending leaves a job that never completes pending review.
func TestPollTimeoutPending(t *testing.T) {
	path, st := fixture(t, 1, 1)
	api := newFake()
	api.onUpload = func() {
		api.mu.Lock()
		defer api.mu.Unlock()
		for k := range api.uploads {
			api.uploads[k] = 0 // the zip never shows
		}
	}
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}, PollTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.PendingReview != 1 || api.polls < 2 {
		t.Errorf("summary %+v after %d polls", sum, api.polls)
	}
}

// TestDryRunSendsNothing plans without sending or writing.
func TestDryRunSendsNothing(t *testing.T) {
	path, st := fixture(t, 5, 5)
	api := newFake()
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{Sample: 3, Seed: 1}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Planned) != 3 || len(api.prepares) != 0 {
		t.Errorf("planned %+v, prepares %d", sum.Planned, len(api.prepares))
	}
	if _, found, _ := st.LastVerifyRun(); found {
		t.Error("a dry run recorded a verify run")
	}
}

// TestLostPrepareAnswer: a prepare whose answer was lost (the job was
// made) is tried again, gets 2215 for its own job ID, and is prepared again
// with the retry flag: one job, one upload.
func TestLostPrepareAnswer(t *testing.T) {
	path, st := fixture(t, 1, 1)
	api := newFake()
	api.loseAnswers = 1
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Authenticated != 1 || len(api.prepares) != 1 {
		t.Fatalf("summary %+v, jobs %v", sum, api.prepares)
	}
	for job, n := range api.prepares {
		if n != 2 || api.uploads[job] != 1 {
			t.Errorf("job %s: %d prepares (one lost, one with the retry flag), %d uploads", job, n, api.uploads[job])
		}
	}
}

// TestSelfieAndLiveness: the selfie column wins over the photo, liveness
// frames are read, and more than 8 frames is an error with nothing sent.
func TestSelfieAndLiveness(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("p.jpg", testkit.Photo(t, "jpeg", 1))
	selfie := testkit.Photo(t, "png", 2)
	write("s.png", selfie)
	write("f.jpg", testkit.Photo(t, "jpeg", 3))
	nine := strings.Repeat("f.jpg;", 9)
	m := "user_id,user_created_at,photo,selfie,liveness\n" +
		"a,2024-01-01,p.jpg,s.png,f.jpg; f.jpg\n" +
		"b,2024-01-01,p.jpg,,\n" +
		"c,2024-01-01,p.jpg,s.png," + nine + "\n" +
		"d,2024-01-01,p.jpg,missing.jpg,\n"
	write("m.csv", []byte(m))
	st, err := store.Open(filepath.Join(dir, "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"a", "b", "c", "d"} {
		var rec store.Record
		rec.UserID = u
		rec.Enroll("0840", "Enroll User", "", "", "", time.Now())
		st.Put(u, rec)
	}
	api := newFake()
	sum, err := runVerify(t, context.Background(), filepath.Join(dir, "m.csv"), st, api, Options{Selection: Selection{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Authenticated != 2 || sum.Errors != 2 || !sum.UsedPhoto {
		t.Fatalf("summary %+v", sum)
	}
	byUser := map[string]smileid.AuthZip{}
	for _, z := range api.zips {
		byUser[z.UserID] = z
	}
	if z := byUser["a"]; string(z.Selfie.Data) != string(selfie) || len(z.Liveness) != 2 {
		t.Errorf("user a: selfie %d bytes, %d frames", len(z.Selfie.Data), len(z.Liveness))
	}
	if z := byUser["b"]; len(z.Selfie.Data) == 0 || len(z.Liveness) != 0 {
		t.Errorf("user b: %+v", z)
	}
	if len(api.users) != 2 {
		t.Errorf("%d users submitted, want 2 (c and d refused before sending)", len(api.users))
	}
	_ = st.EachVerifyJob(0, func(j store.VerifyJob) error {
		switch j.UserID {
		case "c":
			if !strings.Contains(j.Reason, "liveness: 9 frames") {
				t.Errorf("c: %q", j.Reason)
			}
		case "d":
			if !strings.Contains(j.Reason, "selfie") || j.Outcome != "error" {
				t.Errorf("d: %+v", j)
			}
		}
		return nil
	})
}

// TestThrottleUsesNoRetry: 429s are waited out without using up retries.
func TestThrottleUsesNoRetry(t *testing.T) {
	path, st := fixture(t, 2, 2)
	api := newFake()
	api.throttle = 3
	sum, err := runVerify(t, context.Background(), path, st, api, Options{Selection: Selection{All: true}, Retries: 0, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Authenticated != 2 || sum.Requests["throttled"] != 3 {
		t.Errorf("summary %+v", sum)
	}
}
