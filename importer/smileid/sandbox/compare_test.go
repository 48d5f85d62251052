package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/smileid/signature"
	"bulkenroll/importer/testkit"
)

func compareRequest(t *testing.T, user, job string, frames int) smileid.CompareRequest {
	req := smileid.CompareRequest{UserID: user, JobID: job, ComparisonType: "PORTRAIT",
		Selfie:     smileid.Image{Name: "s.jpg", Data: testkit.Photo(t, "jpeg", 1)},
		Comparison: smileid.Image{Name: "c.png", Data: testkit.Photo(t, "png", 2)}}
	for i := range frames {
		req.Liveness = append(req.Liveness, smileid.Image{Name: "l.jpg", Data: testkit.Photo(t, "jpeg", 10+i)})
	}
	return req
}

// codeOf sends req and returns the answer's code.
func codeOf(t *testing.T, c *smileid.Client, req smileid.CompareRequest) string {
	t.Helper()
	res, err := c.Compare(context.Background(), req)
	if err == nil {
		return res.Code
	}
	if ae, ok := err.(*smileid.APIError); ok {
		return ae.Code
	}
	t.Fatalf("not an answer: %v", err)
	return ""
}

func TestCompareSandboxResults(t *testing.T) {
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{CompareRejectUsers: []string{"nomatch"}})
	c := testkit.NewClient(t, hs.URL, nil)
	ctx := context.Background()

	res, err := c.Compare(ctx, compareRequest(t, "alice", "j-alice-1", 8))
	if err != nil || res.Code != "0840" || res.Status != "approved" || res.JobID != "j-alice-1" {
		t.Fatalf("alice: %+v %v", res, err)
	}
	same := compareRequest(t, "twin", "j-twin-1", 4)
	same.Comparison = same.Selfie
	if got := codeOf(t, c, same); got != "0941" {
		t.Errorf("identical images: %s, want 0941", got)
	}
	if got := codeOf(t, c, compareRequest(t, "nomatch", "j-nm-1", 5)); got != "0841" {
		t.Errorf("listed user: %s, want 0841", got)
	}
	if got := codeOf(t, c, compareRequest(t, "bob", "j-alice-1", 4)); got != "2215" {
		t.Errorf("reused job_id: %s, want 2215", got)
	}
	if got := codeOf(t, c, compareRequest(t, "alice", "j-alice-2", 4)); got != "2209" {
		t.Errorf("second compare of alice: %s, want 2209", got)
	}
	again := compareRequest(t, "alice", "j-alice-3", 4)
	again.AllowNewEnroll = true
	if got := codeOf(t, c, again); got != "0840" {
		t.Errorf("allow_new_enroll: %s, want 0840", got)
	}
	// Enrolled by compare is enrolled for backfill.
	_, err = c.Submit(ctx, smileid.User{UserID: "alice", CreatedAt: "2024-01-01", Photo: testkit.Photo(t, "jpeg", 3)})
	if ae, ok := err.(*smileid.APIError); !ok || ae.Code != "2209" {
		t.Errorf("backfill of a compare-enrolled user: %v, want 2209", err)
	}
	// And enrolled by backfill is enrolled for compare.
	if _, err := c.Submit(ctx, smileid.User{UserID: "carol", CreatedAt: "2024-01-01", Photo: testkit.Photo(t, "jpeg", 4)}); err != nil {
		t.Fatal(err)
	}
	if got := codeOf(t, c, compareRequest(t, "carol", "j-carol-1", 4)); got != "2209" {
		t.Errorf("compare of a backfill-enrolled user: %s, want 2209", got)
	}

	jobs := sb.CompareJobs()
	want := []sandbox.CompareJob{
		{UserID: "alice", JobID: "j-alice-1", Liveness: 8, Images: 10, Code: "0840"},
		{UserID: "twin", JobID: "j-twin-1", Liveness: 4, Images: 6, Code: "0941"},
		{UserID: "nomatch", JobID: "j-nm-1", Liveness: 5, Images: 7, Code: "0841"},
		{UserID: "alice", JobID: "j-alice-3", Liveness: 4, Images: 6, Code: "0840"},
	}
	if len(jobs) != len(want) {
		t.Fatalf("ledger %+v, want %+v", jobs, want)
	}
	for i := range want {
		if jobs[i] != want[i] {
			t.Errorf("ledger[%d] = %+v, want %+v", i, jobs[i], want[i])
		}
	}
	if e := sb.Enrolled(); e["alice"] != 1 || e["twin"] != 0 || e["nomatch"] != 0 {
		t.Errorf("enrolled %v", e)
	}
	var st sandbox.State
	resp, err := http.Get(hs.URL + sandbox.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Compare) != len(want) {
		t.Errorf("state's compare ledger has %d jobs, want %d", len(st.Compare), len(want))
	}
}

func TestCompareSandboxRejectRate(t *testing.T) {
	_, _, hs := testkit.NewSandbox(t, sandbox.Options{CompareRejectRate: 1})
	c := testkit.NewClient(t, hs.URL, nil)
	if got := codeOf(t, c, compareRequest(t, "u", "j", 4)); got != "0841" {
		t.Errorf("rate 1: %s, want 0841", got)
	}
	if _, err := sandbox.New(sandbox.Options{PartnerID: "p", APIKey: "k", CompareRejectRate: 1.5}); err == nil {
		t.Error("a reject rate of 1.5 was accepted")
	}
}

// rawCompare posts a hand-built form, signed with key, and returns the
// status and code.
func rawCompare(t *testing.T, url, key string, build func(w *multipart.Writer)) (int, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	build(w)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, url+sandbox.ComparePath, &body)
	ts := signature.Timestamp(time.Now())
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("SmileID-Partner-ID", testkit.Partner)
	req.Header.Set("SmileID-Timestamp", ts)
	req.Header.Set("SmileID-Request-Signature", signature.Sign(key, testkit.Partner, ts))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &a)
	return resp.StatusCode, a.Code + " " + a.Error
}

func TestCompareSandboxRefusals(t *testing.T) {
	_, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	file := func(w *multipart.Writer, name string, data []byte) {
		p, _ := w.CreateFormFile(name, "x.jpg")
		p.Write(data)
	}
	form := func(frames int, skip string, mod func(w *multipart.Writer)) func(w *multipart.Writer) {
		return func(w *multipart.Writer) {
			if skip != "user_id" {
				w.WriteField("user_id", "u1")
			}
			if skip != "partner_params" {
				w.WriteField("partner_params", `{"job_id":"j-`+skip+`","user_id":"u1"}`)
			}
			if skip != "comparison_image_type" {
				w.WriteField("comparison_image_type", "ID_PHOTO")
			}
			if skip != "selfie_image" {
				file(w, "selfie_image", testkit.Photo(t, "jpeg", 1))
			}
			if skip != "comparison_image" {
				file(w, "comparison_image", testkit.Photo(t, "jpeg", 2))
			}
			for i := range frames {
				file(w, "liveness_images", testkit.Photo(t, "jpeg", 10+i))
			}
			if mod != nil {
				mod(w)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		key    string
		build  func(w *multipart.Writer)
		status int
		want   string
	}{
		{"no selfie", testkit.APIKey, form(4, "selfie_image", nil), 400, "2413 selfie_image is required"},
		{"no comparison", testkit.APIKey, form(4, "comparison_image", nil), 400, "2413 comparison_image is required"},
		{"no user", testkit.APIKey, form(4, "user_id", nil), 400, "2413 user_id is required"},
		{"no partner_params", testkit.APIKey, form(4, "partner_params", nil), 400, "2413 partner_params is required"},
		{"no type", testkit.APIKey, form(4, "comparison_image_type", nil), 400, "2413 comparison_image_type is required"},
		{"3 frames", testkit.APIKey, form(3, "", nil), 400, "2413 liveness_images: 3 given"},
		{"no frames", testkit.APIKey, form(0, "", nil), 400, "2413 liveness_images: 0 given"},
		{"9 frames", testkit.APIKey, form(9, "", nil), 400, "2413 liveness_images: 9 given"},
		{"not an image", testkit.APIKey, form(4, "", func(w *multipart.Writer) { file(w, "liveness_images", []byte("GIF89a")) }), 400, "2413 liveness_images must be a JPEG or PNG"},
		{"bad signature", "another-key", form(4, "", nil), 401, "2205"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got := rawCompare(t, hs.URL, tc.key, tc.build)
			if status != tc.status || !strings.HasPrefix(got, tc.want) {
				t.Errorf("HTTP %d %q, want %d %q", status, got, tc.status, tc.want)
			}
		})
	}
}

// TestCompareSandboxFaults: the dice, the quota and refusals apply to
// compare as to backfill; a system error is compare's 2210.
func TestCompareSandboxFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sandbox.Options
		want string
		cls  smileid.Class
	}{
		{"fail", sandbox.Options{FailRate: 1}, "2210", smileid.Transient},
		{"throttle", sandbox.Options{ThrottleRate: 1}, "", smileid.Transient},
		{"refuse 2214", sandbox.Options{Refuse: "2214"}, "2214", smileid.Account},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, _, hs := testkit.NewSandbox(t, tc.opts)
			c := testkit.NewClient(t, hs.URL, nil)
			_, err := c.Compare(context.Background(), compareRequest(t, "u", "j", 4))
			ae := testkit.MustAs[*smileid.APIError](t, err)
			if ae.Code != tc.want || smileid.Classify(err) != tc.cls {
				t.Errorf("%v (class %v), want code %q class %v", err, smileid.Classify(err), tc.want, tc.cls)
			}
			if len(sb.CompareJobs()) != 0 || len(sb.Enrolled()) != 0 {
				t.Errorf("a refused request was recorded")
			}
		})
	}
	t.Run("drop after", func(t *testing.T) {
		sb, _, hs := testkit.NewSandbox(t, sandbox.Options{DropAfterRate: 1})
		c := testkit.NewClient(t, hs.URL, nil)
		_, err := c.Compare(context.Background(), compareRequest(t, "u", "j", 4))
		if !smileid.OutcomeUnknown(err) {
			t.Errorf("%v: want an unknown outcome", err)
		}
		if sb.Enrolled()["u"] != 1 || len(sb.CompareJobs()) != 1 {
			t.Errorf("the dropped job was not done")
		}
		// The retry under the same job_id tells the first reached Smile ID.
		if got := codeOf(t, c, compareRequest(t, "u", "j", 4)); got != "2215" {
			t.Errorf("retry of a dropped job: %s, want 2215", got)
		}
	})
	t.Run("quota", func(t *testing.T) {
		sb, _, hs := testkit.NewSandbox(t, sandbox.Options{Quota: 1, QuotaBurst: 1})
		c := testkit.NewClient(t, hs.URL, nil)
		c.Compare(context.Background(), compareRequest(t, "u1", "j1", 4))
		_, err := c.Compare(context.Background(), compareRequest(t, "u2", "j2", 4))
		if ae := testkit.MustAs[*smileid.APIError](t, err); ae.Status != 429 {
			t.Errorf("second request over a quota of 1/s: %v", err)
		}
		if sb.Stats().QuotaRefused != 1 {
			t.Errorf("quota refusals %d", sb.Stats().QuotaRefused)
		}
	})
}
