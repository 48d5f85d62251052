package main

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
)

// e2eCompareManifest writes, in dir, n compare rows (selfie, 4 to 8
// liveness frames in one ";"-separated column, a comparison image that
// differs from the selfie) and returns the manifest's path and the user IDs.
// mod, if set, may change each row's record (user_id, selfie, liveness,
// comparison_image, comparison_image_type).
func e2eCompareManifest(t testing.TB, dir, prefix string, n int, mod func(i int, rec []string)) (string, []string) {
	t.Helper()
	records := [][]string{{"user_id", "selfie", "liveness", "comparison_image", "comparison_image_type"}}
	ids := make([]string, n)
	// A few shared liveness frames: the rows' selfies and comparison
	// images are their own.
	var frames []string
	for k := range 8 {
		p := fmt.Sprintf("photos/live-%d.jpg", k)
		e2eWriteFile(t, filepath.Join(dir, p), e2eJPEG(t, 200+k))
		frames = append(frames, p)
	}
	types := []string{"ID_PHOTO", "PORTRAIT", "DOCUMENT"}
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i+1)
		ids[i] = id
		selfie := "photos/" + id + "-selfie.jpg"
		comp := "photos/" + id + "-id.png"
		e2eWriteFile(t, filepath.Join(dir, selfie), e2eJPEG(t, i))
		e2eWriteFile(t, filepath.Join(dir, comp), e2ePNG(t, i+1))
		rec := []string{id, selfie, strings.Join(frames[:4+i%5], ";"), comp, types[i%3]}
		if mod != nil {
			mod(i, rec)
		}
		records = append(records, rec)
	}
	path := filepath.Join(dir, prefix+".csv")
	e2eWriteCSV(t, path, records)
	return path, ids
}

// TestE2ECompareValidate: `validate --product compare` refuses a wrong
// manifest with each row's line and reason, and passes a good one.
func TestE2ECompareValidate(t *testing.T) {
	c := e2eNewCLI(t, "")
	path, _ := e2eCompareManifest(t, c.Dir, "cv", 8, func(i int, rec []string) {
		switch i {
		case 1:
			rec[2] = "" // missing liveness
		case 3:
			rec[2] = "photos/live-0.jpg;photos/live-1.jpg;photos/live-2.jpg" // 3 frames
		case 5:
			rec[4] = "SELFIE" // unknown type
		case 6:
			rec[3] = "photos/none.png" // no such comparison image
		case 7:
			rec[0] = "cv-0001" // repeated user_id
		}
	})
	r := c.Run("validate", "--product", "compare", "--manifest", path)
	e2eWantCode(t, r, 1)
	for _, want := range []string{
		"line 3: cv-0002: liveness: missing",
		"line 5: cv-0004: liveness: 3 images, SmartSelfie Compare needs 4 to 8",
		`line 7: cv-0006: comparison_image_type: "SELFIE" is not one of ID_PHOTO, PORTRAIT, DOCUMENT`,
		"line 8: cv-0007: comparison_image: file not found",
		"line 9: cv-0001: user_id: duplicate of line 2",
		"8 rows: 3 valid, 5 invalid",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r)
		}
	}

	good, _ := e2eCompareManifest(t, filepath.Join(c.Dir, "good"), "cg", 6, nil)
	r = c.Run("validate", "--product", "compare", "--manifest", good)
	e2eWantCode(t, r, 0)
	// A compare manifest is not a backfill manifest.
	r = c.Run("validate", "--manifest", good)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, `missing required column`) {
		t.Errorf("a compare manifest validated as backfill:\n%s", r)
	}
	r = c.Run("validate", "--product", "selfie", "--manifest", good)
	e2eWantCode(t, r, 2)
}

// e2eCompareSandbox starts the emulator in the test's process (its ledger
// is read directly) with the e2e credentials.
func e2eCompareSandbox(t testing.TB, opts sandbox.Options) (*sandbox.Server, string) {
	t.Helper()
	opts.PartnerID, opts.APIKey = e2ePartner, e2eKey
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	return sb, hs.URL
}

// e2eNoisyJPEG is a JPEG of noise, far larger than e2eJPEG's.
func e2eNoisyJPEG(t testing.TB, side int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// e2eJobIDsByUser maps each user of the compare ledger to its job_ids.
func e2eJobIDsByUser(sb *sandbox.Server) map[string]map[string]bool {
	m := map[string]map[string]bool{}
	for _, j := range sb.CompareJobs() {
		if m[j.UserID] == nil {
			m[j.UserID] = map[string]bool{}
		}
		m[j.UserID][j.JobID] = true
	}
	return m
}

// TestE2ECompareRun: a 200-row compare manifest enrolls its users (0840)
// and rejects those Smile ID refuses (0841, 0941, 2413) with the code and
// reason; a second run skips everything; a backfill run on its store is
// refused.
func TestE2ECompareRun(t *testing.T) {
	sb, url := e2eCompareSandbox(t, sandbox.Options{CompareRejectUsers: []string{"cr-0010", "cr-0020"}, MaxPhotoBytes: 8000})
	c := e2eNewCLI(t, url)
	big := e2eNoisyJPEG(t, 120)
	if len(big) <= 8000 {
		t.Fatalf("the noisy JPEG has %d bytes, want more than the sandbox's 8000", len(big))
	}
	path, ids := e2eCompareManifest(t, c.Dir, "cr", 200, func(i int, rec []string) {
		switch rec[0] {
		case "cr-0030": // the same file as selfie and comparison image
			rec[3] = rec[1]
		case "cr-0040": // over the API's image limit (not the client's)
			e2eWriteFile(t, filepath.Join(c.Dir, "photos/big.jpg"), big)
			rec[3] = "photos/big.jpg"
		}
	})
	r := c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress", "--workers", "8", "--rate", "0")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 200, Enrolled: 196, Rejected: 4})
	recs := e2eReportByUser(t, c)
	want := map[string]struct{ code, reason string }{
		"cr-0010": {"0841", "No Match"},
		"cr-0020": {"0841", "No Match"},
		"cr-0030": {"0941", "identical"},
		"cr-0040": {"2413", "comparison_image is larger than the limit"},
	}
	for _, id := range ids {
		rec := recs[id]
		if w, ok := want[id]; ok {
			if rec.State != "rejected" || rec.ResultCode != w.code || !strings.Contains(rec.Error+rec.ResultText, w.reason) {
				t.Errorf("%s: %+v, want rejected %s (%s)", id, rec, w.code, w.reason)
			}
			continue
		}
		if rec.State != "enrolled" || rec.ResultCode != "0840" || rec.ResultText != "Face Match" || !strings.HasPrefix(rec.JobID, "bulkenroll-") {
			t.Errorf("%s: %+v, want enrolled 0840 Face Match with its job_id", id, rec)
		}
	}
	jobs := e2eJobIDsByUser(sb)
	for _, id := range ids {
		if n := len(jobs[id]); n > 1 {
			t.Errorf("%s was sent under %d job_ids", id, n)
		}
	}
	for _, j := range sb.CompareJobs() {
		if j.Liveness < 4 || j.Liveness > 8 || j.Images != j.Liveness+2 {
			t.Errorf("ledger %+v: want 4-8 liveness images and two more", j)
		}
	}

	// report --manifest reads the compare manifest with the store's product.
	byLine := e2eReport(t, c, "--manifest", path)
	if len(byLine) != 200 || byLine[29].UserID != "cr-0030" || byLine[29].ResultCode != "0941" {
		t.Errorf("report --manifest: %d records; line 31: %+v", len(byLine), byLine[min(29, len(byLine)-1)])
	}

	// Everything enrolled is skipped; refused rows with the same images
	// are not sent again.
	before := len(sb.CompareJobs())
	r = c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 200, Skipped: 196, Rejected: 4})
	if n := len(sb.CompareJobs()) - before; n != 0 {
		t.Errorf("the second run sent %d jobs", n)
	}
	// A store holds one product.
	backfill, _ := e2eManifest(t, c.Dir, "bf", 3)
	r = c.Run("run", "--manifest", backfill, "--no-progress")
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "holds compare records") {
		t.Errorf("a backfill run on a compare store:\n%s", r)
	}
	// status names the store's product.
	r = c.Run("status")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stdout, "product   compare\n") {
		t.Errorf("status does not name the product:\n%s", r.Stdout)
	}
	r = c.Run("status", "--json")
	if !strings.Contains(r.Stdout, `"product":"compare"`) {
		t.Errorf("status --json does not name the product:\n%s", r.Stdout)
	}
}

// TestE2ECompareResumeAfterKill: a run killed (SIGKILL) with requests in
// flight resumes; no user is ever sent under two job_ids, and a row whose
// first request reached Smile ID unanswered ends failed, naming its job_id.
func TestE2ECompareResumeAfterKill(t *testing.T) {
	sb, url := e2eCompareSandbox(t, sandbox.Options{Latency: 40 * time.Millisecond})
	c := e2eNewCLI(t, url)
	path, ids := e2eCompareManifest(t, c.Dir, "ck", 200, nil)
	p := c.Start("run", "--product", "compare", "--manifest", path, "--no-progress", "--workers", "8", "--rate", "0")
	e2eWaitUntil(t, 60*time.Second, "40 jobs done", func() bool { return len(sb.CompareJobs()) >= 40 })
	p.Signal(syscall.SIGKILL)
	p.Wait()
	time.Sleep(200 * time.Millisecond) // handlers that had a whole body finish
	atKill := len(sb.CompareJobs())

	r := c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress", "--workers", "8", "--rate", "0")
	sum := e2eParseSummary(t, r)
	recs := e2eReportByUser(t, c)
	jobs := e2eJobIDsByUser(sb)
	enrolled, failed := 0, 0
	for _, id := range ids {
		if n := len(jobs[id]); n != 1 {
			t.Errorf("%s sent under %d job_ids, want 1", id, n)
		}
		rec := recs[id]
		switch rec.State {
		case "enrolled":
			enrolled++
		case "failed":
			// Its first request reached Smile ID; the answer died with the
			// killed run: the retry's 2215 says so.
			failed++
			var jobID string
			for j := range jobs[id] {
				jobID = j
			}
			if rec.ResultCode != "" && rec.ResultCode != "2215" || !strings.Contains(rec.Error, "2215") || !strings.Contains(rec.Error, "check job_id "+jobID) {
				t.Errorf("%s: %+v, want failed on 2215 naming job_id %s", id, rec, jobID)
			}
		default:
			t.Errorf("%s: %s (%s)", id, rec.State, rec.Error)
		}
	}
	// The jobs Smile ID did before the kill are the rows the store had
	// saved (skipped now) and those whose answers died with the run.
	if enrolled+failed != 200 || sum.Skipped+failed != atKill {
		t.Errorf("%d enrolled, %d failed, %d skipped; %d jobs done before the kill\n%s", enrolled, failed, sum.Skipped, atKill, r)
	}
	if e := sb.Enrolled(); len(e) != 200 {
		t.Errorf("the sandbox enrolled %d users, want 200", len(e))
	}
	t.Logf("after the kill: %+v; %d rows failed on 2215", sum, failed)

	// A third run sends the failed rows again under the same job_id only.
	r = c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress")
	for id, set := range e2eJobIDsByUser(sb) {
		if len(set) != 1 {
			t.Errorf("after a third run %s has %d job_ids", id, len(set))
		}
	}
}

// TestE2ECompareStopsOn2205: a refused signature stops the run at once;
// the rows stay pending.
func TestE2ECompareStopsOn2205(t *testing.T) {
	sb, url := e2eCompareSandbox(t, sandbox.Options{})
	c := e2eNewCLI(t, url)
	c.Env["SMILE_API_KEY"] = "another-key"
	path, _ := e2eCompareManifest(t, c.Dir, "cs", 50, nil)
	r := c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress", "--workers", "2", "--rate", "0")
	e2eWantCode(t, r, 2)
	sum := e2eParseSummary(t, r)
	if sum.Enrolled != 0 || sum.Pending < 45 {
		t.Errorf("summary %+v, want nothing enrolled and the rows pending", sum)
	}
	if !strings.Contains(r.Stderr, "2205") {
		t.Errorf("the stop does not name 2205:\n%s", r)
	}
	if n := sb.Stats().Requests; n > 8 {
		t.Errorf("%d requests after a 2205, want the run to stop at once", n)
	}
}

// TestE2ECompareRemoteAndFix: a compare row's images may be URLs (fetched
// as the request is written), and --fix-photos converts any of its images
// (here a GIF photo on file), noting which.
func TestE2ECompareRemoteAndFix(t *testing.T) {
	sb, url := e2eCompareSandbox(t, sandbox.Options{})
	c := e2eNewCLI(t, url)
	files := httptest.NewServer(http.FileServer(http.Dir(c.Dir)))
	t.Cleanup(files.Close)
	var gifData bytes.Buffer
	if err := gif.Encode(&gifData, e2eImage(7), nil); err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, filepath.Join(c.Dir, "photos/id.gif"), gifData.Bytes())
	path, ids := e2eCompareManifest(t, c.Dir, "cx", 3, func(i int, rec []string) {
		switch i {
		case 0: // every liveness frame remote
			var urls []string
			for _, p := range strings.Split(rec[2], ";") {
				urls = append(urls, files.URL+"/"+p)
			}
			rec[2] = strings.Join(urls, ";")
		case 1: // a GIF photo on file
			rec[3] = "photos/id.gif"
		}
	})
	r := c.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress", "--fix-photos")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 3, Enrolled: 3})
	recs := e2eReportByUser(t, c)
	if note := recs[ids[1]].PhotoNote; !strings.HasPrefix(note, "comparison_image: ") {
		t.Errorf("the GIF's row notes %q, want the converted image named", note)
	}
	jobs := sb.CompareJobs()
	if len(jobs) != 3 {
		t.Fatalf("%d jobs, want 3", len(jobs))
	}
	for _, j := range jobs {
		if j.UserID == ids[0] && j.Liveness != 4 {
			t.Errorf("the remote row sent %d liveness frames, want 4", j.Liveness)
		}
	}
	// Without --fix-photos the GIF is refused before sending, naming it.
	c2 := e2eNewCLI(t, url)
	r = c2.Run("run", "--product", "compare", "--manifest", path, "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	if !strings.Contains(r.Stderr, "comparison_image: not a JPEG or PNG") {
		t.Errorf("the GIF row's reason does not name its image:\n%s", r)
	}
}
