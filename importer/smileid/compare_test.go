package smileid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/signature"
	"bulkenroll/importer/testkit"
)

// comparePart is one part of a compare request as the test server read it.
type comparePart struct {
	name, filename, ctype string
	data                  []byte
}

// compareSeen is a compare request as the test server read it.
type compareSeen struct {
	header        http.Header
	contentLength int64
	chunked       bool
	parts         []comparePart
}

func (s compareSeen) field(name string) string {
	for _, p := range s.parts {
		if p.name == name && p.filename == "" {
			return string(p.data)
		}
	}
	return ""
}

func (s compareSeen) files(name string) [][]byte {
	var out [][]byte
	for _, p := range s.parts {
		if p.name == name && p.filename != "" {
			out = append(out, p.data)
		}
	}
	return out
}

// compareServer records each request's parts and answers with answer.
func compareServer(t *testing.T, answer func(w http.ResponseWriter, seen compareSeen)) (*httptest.Server, *[]compareSeen) {
	t.Helper()
	var all []compareSeen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != smileid.ComparePath || r.Method != http.MethodPost {
			http.Error(w, "wrong route", http.StatusNotFound)
			return
		}
		seen := compareSeen{header: r.Header.Clone(), contentLength: r.ContentLength,
			chunked: len(r.TransferEncoding) > 0}
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil {
			t.Errorf("Content-Type %q: %v", r.Header.Get("Content-Type"), err)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("reading the parts: %v", err)
				return
			}
			data, _ := io.ReadAll(p)
			seen.parts = append(seen.parts, comparePart{name: p.FormName(), filename: p.FileName(),
				ctype: p.Header.Get("Content-Type"), data: data})
		}
		all = append(all, seen)
		answer(w, seen)
	}))
	t.Cleanup(srv.Close)
	return srv, &all
}

func answerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func matchAnswer(code, message, status string) func(http.ResponseWriter, compareSeen) {
	return func(w http.ResponseWriter, seen compareSeen) {
		var pp map[string]string
		json.Unmarshal([]byte(seen.field("partner_params")), &pp)
		answerJSON(w, 200, map[string]any{"code": code, "message": message, "status": status,
			"job_type": "smart_selfie_compare", "job_id": "7", "user_id": seen.field("user_id"),
			"partner_params": pp})
	}
}

// compareReq builds a request of n liveness frames; when open is set, each
// image is opened through it (which counts), else sent from memory.
func compareReq(t *testing.T, n int, open func(data []byte) func() (io.ReadCloser, error)) smileid.CompareRequest {
	img := func(seed int, name string) smileid.Image {
		data := testkit.Photo(t, "jpeg", seed)
		if open == nil {
			return smileid.Image{Name: name, Data: data}
		}
		return smileid.Image{Name: name, Open: open(data), Size: int64(len(data))}
	}
	req := smileid.CompareRequest{UserID: "u-1", JobID: "job-1", ComparisonType: "ID_PHOTO",
		Selfie: img(1, "selfie.jpg"), Comparison: img(2, "id.jpg"), CallbackURL: "https://cb.example/x",
		PartnerParams: map[string]string{"batch": "b7"}}
	for i := range n {
		req.Liveness = append(req.Liveness, img(10+i, "live"+strconv.Itoa(i)+".jpg"))
	}
	return req
}

func TestCompareRequestShape(t *testing.T) {
	srv, seen := compareServer(t, matchAnswer("0840", "Face Match", "approved"))
	now := time.Date(2024, 5, 24, 9, 45, 43, 44e6, time.UTC)
	c := testkit.NewClient(t, srv.URL, func(_ *smileid.Config, o *smileid.ClientOptions) { o.Now = func() time.Time { return now } })
	var open, maxOpen, opens atomic.Int64
	opener := func(data []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) {
			opens.Add(1)
			if n := open.Add(1); n > maxOpen.Load() {
				maxOpen.Store(n)
			}
			return closeFunc{Reader: bytes.NewReader(data), close: func() { open.Add(-1) }}, nil
		}
	}
	req := compareReq(t, 6, opener)
	req.AllowNewEnroll = true
	res, err := c.Compare(context.Background(), req)
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	if !res.Approved() || res.Code != "0840" || res.Text != "Face Match" || res.JobID != "job-1" || res.SmileJobID != "7" {
		t.Errorf("result %+v", res)
	}
	if len(*seen) != 1 {
		t.Fatalf("%d requests, want 1", len(*seen))
	}
	s := (*seen)[0]
	ts := signature.Timestamp(now)
	if s.header.Get("SmileID-Partner-ID") != testkit.Partner || s.header.Get("SmileID-Timestamp") != ts ||
		!signature.Verify(testkit.APIKey, testkit.Partner, ts, s.header.Get("SmileID-Request-Signature")) {
		t.Errorf("auth headers %v", s.header)
	}
	if s.chunked || s.contentLength <= 0 {
		t.Errorf("Content-Length %d chunked %v, want an exact length", s.contentLength, s.chunked)
	}
	for name, want := range map[string]string{"user_id": "u-1", "comparison_image_type": "ID_PHOTO",
		"allow_new_enroll": "true", "callback_url": "https://cb.example/x"} {
		if got := s.field(name); got != want {
			t.Errorf("field %s = %q, want %q", name, got, want)
		}
	}
	var pp map[string]string
	if err := json.Unmarshal([]byte(s.field("partner_params")), &pp); err != nil || pp["job_id"] != "job-1" || pp["user_id"] != "u-1" || pp["batch"] != "b7" {
		t.Errorf("partner_params %q (%v)", s.field("partner_params"), err)
	}
	if got := s.files("liveness_images"); len(got) != 6 {
		t.Errorf("%d liveness_images parts, want 6 (one per frame, same name)", len(got))
	} else {
		for i, g := range got {
			if !bytes.Equal(g, testkit.Photo(t, "jpeg", 10+i)) {
				t.Errorf("liveness frame %d differs from the file", i)
			}
		}
	}
	if got := s.files("selfie_image"); len(got) != 1 || !bytes.Equal(got[0], testkit.Photo(t, "jpeg", 1)) {
		t.Errorf("selfie_image parts %d", len(got))
	}
	if got := s.files("comparison_image"); len(got) != 1 || !bytes.Equal(got[0], testkit.Photo(t, "jpeg", 2)) {
		t.Errorf("comparison_image parts %d", len(got))
	}
	if opens.Load() != 8 || maxOpen.Load() != 1 || open.Load() != 0 {
		t.Errorf("opens %d, most open at once %d, left open %d; want 8, 1, 0 (one file at a time)", opens.Load(), maxOpen.Load(), open.Load())
	}
}

type closeFunc struct {
	io.Reader
	close func()
}

func (c closeFunc) Close() error { c.close(); return nil }

func TestCompareUnknownSizeIsChunked(t *testing.T) {
	srv, seen := compareServer(t, matchAnswer("0840", "Face Match", "approved"))
	c := testkit.NewClient(t, srv.URL, nil)
	req := compareReq(t, 4, nil)
	data := testkit.Photo(t, "png", 3)
	req.Comparison = smileid.Image{Name: "id.png", Size: -1, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
	if _, err := c.Compare(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s := (*seen)[0]
	if !s.chunked {
		t.Errorf("a body with an image of unknown size was not chunked (Content-Length %d)", s.contentLength)
	}
	for _, p := range s.parts {
		if p.name == "comparison_image" && (p.ctype != "image/png" || !bytes.Equal(p.data, data)) {
			t.Errorf("comparison_image type %q, %d bytes", p.ctype, len(p.data))
		}
	}
}

func TestCompareImageChanged(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return // cut short: not a request
		}
		requests.Add(1)
		answerJSON(w, 200, map[string]any{"code": "0840", "message": "Face Match", "status": "approved"})
	}))
	defer srv.Close()
	c := testkit.NewClient(t, srv.URL, nil)
	for _, tc := range []struct {
		name  string
		delta int64
	}{{"shorter", -5}, {"longer", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			req := compareReq(t, 4, nil)
			data := testkit.Photo(t, "jpeg", 40)
			req.Liveness[2] = smileid.Image{Name: "l.jpg", Size: int64(len(data)) - tc.delta,
				Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
			_, err := c.Compare(context.Background(), req)
			pe := testkit.MustAs[*smileid.PhotoError](t, err)
			if !errors.Is(pe, smileid.ErrPhotoChanged) {
				t.Errorf("error %v, want ErrPhotoChanged", pe)
			}
		})
	}
	if requests.Load() != 0 {
		t.Errorf("the server acted on %d cut-short requests", requests.Load())
	}
}

func TestCompareRefusesBadRequest(t *testing.T) {
	c := testkit.NewClient(t, "http://127.0.0.1:1", nil)
	for name, mod := range map[string]func(*smileid.CompareRequest){
		"3 frames": func(r *smileid.CompareRequest) { r.Liveness = r.Liveness[:3] },
		"9 frames": func(r *smileid.CompareRequest) {
			r.Liveness = append(r.Liveness, r.Liveness[0], r.Liveness[1], r.Liveness[2], r.Liveness[3], r.Liveness[0])
		},
		"unknown type": func(r *smileid.CompareRequest) { r.ComparisonType = "SELFIE" },
		"no job_id":    func(r *smileid.CompareRequest) { r.JobID = "" },
	} {
		req := compareReq(t, 4, nil)
		mod(&req)
		if _, err := c.Compare(context.Background(), req); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
}

// TestCompareAnswers classifies each documented answer of compare, and the
// same codes at backfill, whose meaning differs for 2210.
func TestCompareAnswers(t *testing.T) {
	errAnswer := func(status int, code, text string) func(http.ResponseWriter, compareSeen) {
		return func(w http.ResponseWriter, _ compareSeen) {
			answerJSON(w, status, map[string]any{"code": code, "error": text, "success": false})
		}
	}
	for _, tc := range []struct {
		name     string
		answer   func(http.ResponseWriter, compareSeen)
		approved bool
		result   bool // a result comes back with the error
		class    smileid.Class
		answerCl string
		unknown  bool
	}{
		{"0840", matchAnswer("0840", "Face Match", "approved"), true, true, 0, smileid.AnswerEnrolled, false},
		{"0841", matchAnswer("0841", "No Match", "rejected"), false, true, smileid.Permanent, smileid.AnswerRefused, false},
		{"0941", matchAnswer("0941", "No Match - The compared images are identical.", "rejected"), false, true, smileid.Permanent, smileid.AnswerRefused, false},
		{"2413", errAnswer(400, "2413", "selfie_image is required."), false, false, smileid.Permanent, smileid.AnswerRefused, false},
		{"2215", errAnswer(400, "2215", "Job already exists. Did you mean to set the retry flag to true?"), false, false, smileid.JobExists, smileid.AnswerRefused, false},
		{"2209", errAnswer(400, "2209", "This user is already enrolled."), false, false, smileid.AlreadyEnrolled, smileid.AnswerAlreadyEnrolled, false},
		{"2205", errAnswer(401, "2205", "Unauthorized"), false, false, smileid.Account, smileid.AnswerAccount, false},
		{"2214", errAnswer(403, "2214", "Product not activated"), false, false, smileid.Account, smileid.AnswerAccount, false},
		{"2220", errAnswer(403, "2220", "Production not enabled"), false, false, smileid.Account, smileid.AnswerAccount, false},
		{"2210 at 400", errAnswer(400, "2210", "System Error"), false, false, smileid.Transient, smileid.AnswerServerError, false},
		{"2210 at 500", errAnswer(500, "2210", "System Error"), false, false, smileid.Transient, smileid.AnswerServerError, true},
		{"2201", errAnswer(500, "2201", "System Error"), false, false, smileid.Transient, smileid.AnswerServerError, true},
		{"429", func(w http.ResponseWriter, _ compareSeen) { http.Error(w, "slow down", 429) }, false, false, smileid.Transient, smileid.AnswerThrottled, false},
		{"502 page", func(w http.ResponseWriter, _ compareSeen) { http.Error(w, "<html>bad gateway</html>", 502) }, false, false, smileid.Transient, smileid.AnswerServerError, true},
		{"other user", func(w http.ResponseWriter, _ compareSeen) {
			answerJSON(w, 200, map[string]any{"code": "0840", "message": "Face Match", "status": "approved", "user_id": "someone-else"})
		}, false, false, smileid.Foreign, smileid.AnswerNotSmileID, true},
		{"forged signature", func(w http.ResponseWriter, _ compareSeen) {
			answerJSON(w, 200, map[string]any{"code": "0840", "message": "Face Match", "status": "approved",
				"timestamp": "2024-05-24T09:45:43.044Z", "signature": signature.Sign("other-key", testkit.Partner, "2024-05-24T09:45:43.044Z")})
		}, false, false, smileid.Transient, smileid.AnswerUnverified, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := compareServer(t, tc.answer)
			c := testkit.NewClient(t, srv.URL, nil)
			res, err := c.Compare(context.Background(), compareReq(t, 4, nil))
			if tc.approved != (err == nil) {
				t.Fatalf("err = %v, want approved %v", err, tc.approved)
			}
			if (res != nil) != tc.result {
				t.Errorf("result %+v, want one: %v", res, tc.result)
			}
			if err == nil {
				return
			}
			if got := smileid.Classify(err); got != tc.class {
				t.Errorf("Classify = %v, want %v (%v)", got, tc.class, err)
			}
			if got := smileid.AnswerClass(err); got != tc.answerCl {
				t.Errorf("AnswerClass = %v, want %v", got, tc.answerCl)
			}
			if got := smileid.OutcomeUnknown(err); got != tc.unknown {
				t.Errorf("OutcomeUnknown = %v, want %v", got, tc.unknown)
			}
			var ae *smileid.APIError
			if errors.As(err, &ae) && ae.Code != "" && !strings.Contains(err.Error(), ae.Code) {
				t.Errorf("message %q lost the code", err)
			}
		})
	}
}

// TestClassifyPerEndpoint: one code, two endpoints, two meanings; backfill's
// table is what Classify always said.
func TestClassifyPerEndpoint(t *testing.T) {
	for _, tc := range []struct {
		code     string
		status   int
		backfill smileid.Class
		compare  smileid.Class
	}{
		{"2210", 400, smileid.Permanent, smileid.Transient},
		{"2215", 400, smileid.Permanent, smileid.JobExists},
		{"2209", 400, smileid.AlreadyEnrolled, smileid.AlreadyEnrolled},
		{"2205", 401, smileid.Account, smileid.Account},
		{"2201", 500, smileid.Transient, smileid.Transient},
		{"2213", 400, smileid.Permanent, smileid.Permanent},
	} {
		b := &smileid.APIError{Status: tc.status, Code: tc.code, Text: "x"}
		c := &smileid.APIError{Status: tc.status, Code: tc.code, Text: "x", Endpoint: smileid.EndpointCompare}
		if got := smileid.Classify(b); got != tc.backfill {
			t.Errorf("backfill %s: %v, want %v", tc.code, got, tc.backfill)
		}
		if got := smileid.Classify(c); got != tc.compare {
			t.Errorf("compare %s: %v, want %v", tc.code, got, tc.compare)
		}
		if got := smileid.EndpointCompare.Classify(b); got != tc.compare {
			t.Errorf("EndpointCompare.Classify %s: %v, want %v", tc.code, got, tc.compare)
		}
	}
}
