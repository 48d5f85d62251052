package sandbox

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// authEnv is a sandbox on a fake clock with users enrolled through the
// backfill route.
type authEnv struct {
	t     *testing.T
	s     *Server
	hs    *httptest.Server
	clock *fakeClock
}

func newAuthEnv(t *testing.T, opts Options, enrolled ...string) *authEnv {
	t.Helper()
	c := &fakeClock{}
	s, hs := start(t, c.opts(opts))
	for _, u := range enrolled {
		if r := mustSend(t, hs.URL, fields(u)); r.status != http.StatusOK {
			t.Fatalf("enrolling %s: HTTP %d %s", u, r.status, r.raw)
		}
	}
	return &authEnv{t: t, s: s, hs: hs, clock: c}
}

// post sends body as JSON to path and returns the status and the answer.
func (e *authEnv) post(path string, body any) (int, map[string]any, []byte) {
	e.t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		raw = mustJSON(body)
	}
	resp, err := http.Post(e.hs.URL+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m, b
}

// prepareBody is a valid signed prepare request, as the Node SDK sends it.
func prepareBody(user, job string) map[string]any {
	ts := signature.Timestamp(time.Now())
	return map[string]any{
		"callback_url": "", "file_name": "selfie.zip", "model_parameters": map[string]any{},
		"partner_params":     map[string]any{"user_id": user, "job_id": job, "job_type": 2},
		"smile_client_id":    testPartner,
		"use_enrolled_image": false, "entered": "false",
		"signature": signature.Sign(testKey, testPartner, ts), "timestamp": ts,
		"source_sdk": "javascript", "source_sdk_version": "3.2.1",
	}
}

func statusBody(user, job string) map[string]any {
	ts := "2024-05-24 09:45:43 +0000" // Ruby's format: hashed as sent
	return map[string]any{"user_id": user, "job_id": job, "partner_id": testPartner,
		"image_links": false, "history": "true", "timestamp": ts, "signature": signature.Sign(testKey, testPartner, ts)}
}

// prepare prepares a job and returns its upload URL.
func (e *authEnv) prepare(user, job string) string {
	e.t.Helper()
	st, m, raw := e.post(UploadPath, prepareBody(user, job))
	if st != http.StatusOK || m["code"] != "2202" {
		e.t.Fatalf("prepare %s/%s: HTTP %d %s", user, job, st, raw)
	}
	return m["upload_url"].(string)
}

// put uploads a zip to url and returns the HTTP status.
func (e *authEnv) put(url, contentType string, zipData []byte) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(zipData))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// status polls a job and checks the answer's signature.
func (e *authEnv) status(user, job string) map[string]any {
	e.t.Helper()
	st, m, raw := e.post(JobStatusPath, statusBody(user, job))
	if st != http.StatusOK {
		e.t.Fatalf("job_status %s: HTTP %d %s", job, st, raw)
	}
	ts, _ := m["timestamp"].(string)
	sig, _ := m["signature"].(string)
	if !signature.Verify(testKey, testPartner, ts, sig) {
		e.t.Errorf("job_status %s: the answer's signature does not verify: %s", job, raw)
	}
	return m
}

// makeZip builds a zip of info.json (images as given) and files.
func makeZip(t testing.TB, images []map[string]any, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, data []byte) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if images != nil {
		add("info.json", mustJSON(map[string]any{"images": images, "package_information": map[string]any{"language": "go"}}))
	}
	for n, d := range files {
		add(n, d)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func fileSelfie(id any) []map[string]any {
	return []map[string]any{{"image_type_id": id, "image": "", "file_name": "selfie.jpg"}}
}

var goodZip = func(t testing.TB) []byte {
	return makeZip(t, fileSelfie(0), map[string][]byte{"selfie.jpg": jpegPhoto})
}

func TestPrepareUpload(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	e.prepare("u1", "used")
	n := 0
	mod := func(f func(m map[string]any)) map[string]any {
		n++
		m := prepareBody("u1", fmt.Sprint("j-new-", n))
		f(m)
		return m
	}
	pp := func(m map[string]any) map[string]any { return m["partner_params"].(map[string]any) }
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		text   string
	}{
		{"valid", prepareBody("u1", "j1"), 200, "2202", ""},
		{"job_type as a string", mod(func(m map[string]any) { pp(m)["job_type"] = "2" }), 200, "2202", ""},
		{"partner_id for smile_client_id", mod(func(m map[string]any) { m["partner_id"] = m["smile_client_id"]; delete(m, "smile_client_id") }), 200, "2202", ""},
		{"retry as a string", mod(func(m map[string]any) { m["retry"] = "false" }), 200, "2202", ""},
		{"reused job_id", prepareBody("u1", "used"), 400, "2215", "retry flag"},
		{"reused job_id, retry for another user", mod(func(m map[string]any) { pp(m)["job_id"] = "used"; pp(m)["user_id"] = "u2"; m["retry"] = true }), 400, "2215", ""},
		{"never enrolled", prepareBody("ghost", "j2"), 400, "2210", "No enrolled user"},
		{"no user_id", mod(func(m map[string]any) { delete(pp(m), "user_id") }), 400, "2213", "partner_params.user_id"},
		{"no job_id", mod(func(m map[string]any) { delete(pp(m), "job_id") }), 400, "2213", "partner_params.job_id"},
		{"no job_type", mod(func(m map[string]any) { delete(pp(m), "job_type") }), 400, "2213", "partner_params.job_type"},
		{"no partner_params", mod(func(m map[string]any) { delete(m, "partner_params") }), 400, "2213", "partner_params.user_id"},
		{"no source_sdk", mod(func(m map[string]any) { delete(m, "source_sdk") }), 400, "2213", "source_sdk"},
		{"no smile_client_id", mod(func(m map[string]any) { delete(m, "smile_client_id") }), 400, "2213", "smile_client_id"},
		{"no signature", mod(func(m map[string]any) { delete(m, "signature") }), 400, "2213", "signature"},
		{"no timestamp", mod(func(m map[string]any) { delete(m, "timestamp") }), 400, "2213", "timestamp"},
		{"bad signature", mod(func(m map[string]any) { m["signature"] = signature.Sign("other", testPartner, m["timestamp"].(string)) }), 401, "2205", ""},
		{"other partner", mod(func(m map[string]any) { m["smile_client_id"] = "p2" }), 401, "2205", ""},
		{"job type 4", mod(func(m map[string]any) { pp(m)["job_type"] = 4 }), 400, "2212", ""},
		{"job_type not a number", mod(func(m map[string]any) { pp(m)["job_type"] = "two" }), 400, "2204", "job_type"},
		{"user_id a number", mod(func(m map[string]any) { pp(m)["user_id"] = 7 }), 400, "2204", "user_id must be a string"},
		{"not JSON", []byte(`{"source_sdk":`), 400, "2203", ""},
		{"an array", []byte(`[]`), 400, "2203", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m, raw := e.post(UploadPath, c.body)
			if st != c.status || m["code"] != c.code || !strings.Contains(fmt.Sprint(m["error"]), c.text) {
				t.Fatalf("HTTP %d %s, want %d code %s with %q", st, raw, c.status, c.code, c.text)
			}
			if st == 200 {
				sj, _ := m["smile_job_id"].(string)
				ref, _ := m["ref_id"].(string)
				if len(sj) != 10 || !strings.Contains(ref, sj) || !strings.HasPrefix(m["upload_url"].(string), e.hs.URL+UploadURLPrefix+ref+"/selfie.zip?") {
					t.Errorf("answer %s: want a 10-digit smile_job_id, a ref_id holding it, an upload URL on the sandbox", raw)
				}
			}
		})
	}
	a := e.s.AuthStats()
	if a.Duplicates != 2 || a.NotEnrolled != 1 || a.Unauthorized != 2 || a.Rejected != 13 || a.Prepared != 5 {
		t.Errorf("auth stats %+v", a)
	}
}

func TestPrepareRetryHandsOutTheSameURL(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	url1 := e.prepare("u1", "j1")
	b := prepareBody("u1", "j1")
	b["retry"] = true
	st, m, raw := e.post(UploadPath, b)
	if st != 200 || m["upload_url"] != url1 {
		t.Fatalf("retry: HTTP %d %s, want the same upload URL %s", st, raw, url1)
	}
	if j := e.s.AuthJobs()["j1"]; j.Prepares != 2 || j.Uploads != 0 || j.Outcome != JobAwaitingUpload {
		t.Errorf("job %+v", j)
	}
}

func TestUploadURLBehindTLSFront(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	req := httptest.NewRequest(http.MethodPost, UploadPath, bytes.NewReader(mustJSON(prepareBody("u1", "j1"))))
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "front.example:8443")
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, req)
	var m map[string]any
	json.Unmarshal(w.Body.Bytes(), &m)
	if u, _ := m["upload_url"].(string); !strings.HasPrefix(u, "https://front.example:8443"+UploadURLPrefix) {
		t.Errorf("upload_url %q, want it through the front", u)
	}
}

func TestZipUpload(t *testing.T) {
	big := append(append([]byte{}, jpegPhoto...), make([]byte, 5<<20)...)
	cases := []struct {
		name        string
		contentType string
		zip         func(t testing.TB) []byte
		status      int
		outcome     string
		code        string
		problem     string
	}{
		{"file selfie, numeric type", "application/zip", goodZip, 200, JobAuthenticated, "1220", ""},
		{"file selfie, string type (mobile SDKs)", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, fileSelfie("0"), map[string][]byte{"selfie.jpg": jpegPhoto})
		}, 200, JobAuthenticated, "1220", ""},
		{"base64 PNG selfie and liveness", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, []map[string]any{{"image_type_id": 2, "image": b64(pngPhoto)}, {"image_type_id": "6", "image": b64(jpegPhoto)},
				{"image_type_id": 4, "file_name": "l1.jpg"}}, map[string][]byte{"l1.jpg": jpegPhoto})
		}, 200, JobAuthenticated, "1220", ""},
		{"selfie in a folder", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, fileSelfie(0), map[string][]byte{"job/selfie.jpg": jpegPhoto})
		}, 200, JobAuthenticated, "1220", ""},
		{"not a zip", "application/zip", func(testing.TB) []byte { return []byte("PK no zip") }, 200, JobInvalid, "0903", "zip:"},
		{"no info.json", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, nil, map[string][]byte{"selfie.jpg": jpegPhoto})
		}, 200, JobInvalid, "2203", "no info.json"},
		{"info.json not JSON", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, nil, map[string][]byte{"info.json": []byte("{")})
		}, 200, JobInvalid, "2203", "info.json"},
		{"no selfie", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, []map[string]any{{"image_type_id": 4, "file_name": "l.jpg"}}, nil)
		}, 200, JobInvalid, "0001", "0 selfies"},
		{"selfie file missing", "application/zip", func(t testing.TB) []byte { return makeZip(t, fileSelfie(0), nil) }, 200, JobInvalid, "0001", "not in the zip"},
		{"GIF selfie", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, fileSelfie(0), map[string][]byte{"selfie.jpg": gifPhoto})
		}, 200, JobInvalid, "0001", "JPEG or PNG"},
		{"selfie over 5 MiB", "application/zip", func(t testing.TB) []byte {
			return makeZip(t, fileSelfie(0), map[string][]byte{"selfie.jpg": big})
		}, 200, JobInvalid, "0001", "larger than"},
		{"wrong content type", "application/octet-stream", goodZip, 403, JobAwaitingUpload, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newAuthEnv(t, Options{}, "u1")
			url := e.prepare("u1", "j1")
			if st := e.put(url, c.contentType, c.zip(t)); st != c.status {
				t.Fatalf("PUT: HTTP %d, want %d", st, c.status)
			}
			j := e.s.AuthJobs()["j1"]
			if j.Outcome != c.outcome || j.ResultCode != c.code || !strings.Contains(j.Problem, c.problem) {
				t.Errorf("job %+v, want outcome %s code %s problem %q", j, c.outcome, c.code, c.problem)
			}
			m := e.status("u1", "j1")
			if complete := m["job_complete"] == true; complete != (c.outcome != JobAwaitingUpload) {
				t.Errorf("job_status %v, outcome %s", m, c.outcome)
			}
			if c.outcome == JobInvalid && m["job_success"] != false {
				t.Errorf("job_status %v: a failed job with job_success", m)
			}
		})
	}
}

func TestZipUploadRefusals(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	url := e.prepare("u1", "j1")
	cases := []struct {
		name, url string
		status    int
	}{
		{"unknown ref", e.hs.URL + UploadURLPrefix + "nope/selfie.zip", 404},
		{"other file name", strings.Replace(url, "/selfie.zip?", "/other.zip?", 1), 404},
		{"bad signature", strings.Replace(url, "Signature=", "Signature=x", 1), 403},
		{"no signature", strings.Split(url, "?")[0], 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if st := e.put(c.url, "application/zip", goodZip(t)); st != c.status {
				t.Errorf("PUT %s: HTTP %d, want %d", c.url, st, c.status)
			}
		})
	}
	resp, err := http.Post(url, "application/zip", bytes.NewReader(goodZip(t)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "PUT" {
		t.Errorf("POST to the upload URL: HTTP %d Allow %q, want 405 PUT", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if a := e.s.AuthStats(); a.UploadsRefused != len(cases) || a.Uploads != 0 {
		t.Errorf("auth stats %+v", a)
	}
}

func TestJobStatusLifecycle(t *testing.T) {
	e := newAuthEnv(t, Options{AuthDelay: 2 * time.Second}, "u1")
	url := e.prepare("u1", "j1")
	want := func(when string, complete bool, result string) map[string]any {
		t.Helper()
		m := e.status("u1", "j1")
		if m["job_complete"] != complete {
			t.Fatalf("%s: job_complete %v, want %v: %v", when, m["job_complete"], complete, m)
		}
		if s, ok := m["result"].(string); result != "" && (!ok || s != result) {
			t.Fatalf("%s: result %v, want %q", when, m["result"], result)
		}
		if _, ok := m["history"]; !ok {
			t.Errorf("%s: history asked for and missing: %v", when, m)
		}
		if _, ok := m["image_links"]; ok {
			t.Errorf("%s: image_links not asked for: %v", when, m)
		}
		return m
	}
	want("before the upload", false, "No zip uploaded")
	e.clock.at(time.Minute) // a delay before the upload does not count
	want("a minute later, no upload", false, "No zip uploaded")
	if st := e.put(url, "application/zip", goodZip(t)); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	e.clock.at(time.Minute + 1999*time.Millisecond)
	want("1.999 s after the upload", false, "Processing")
	e.clock.at(time.Minute + 2*time.Second)
	m := want("2 s after the upload", true, "")
	res, _ := m["result"].(map[string]any)
	acts, _ := res["Actions"].(map[string]any)
	pp, _ := res["PartnerParams"].(map[string]any)
	if m["job_success"] != true || m["code"] != "2302" || res["ResultCode"] != "1220" || res["ResultText"] != "Authenticated" ||
		acts["Selfie_To_Registered_Selfie_Compare"] != "Completed" || acts["Liveness_Check"] != "Passed" || len(acts) != 12 ||
		pp["job_type"] != "2" || pp["user_id"] != "u1" || pp["job_id"] != "j1" || res["ConfidenceValue"] != "99" {
		t.Errorf("complete answer %v", m)
	}
	if h, _ := m["history"].([]any); len(h) != 1 {
		t.Errorf("history %v, want the result", m["history"])
	}
	if n := e.s.AuthJobs()["j1"].Uploads; n != 1 {
		t.Errorf("uploads %d, want 1", n)
	}
	e.put(url, "application/zip", goodZip(t))
	if j := e.s.AuthJobs()["j1"]; j.Uploads != 2 || j.Outcome != JobAuthenticated {
		t.Errorf("after a second upload: %+v, want 2 uploads, the outcome unchanged", j)
	}
}

func TestJobStatusRefusals(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	e.prepare("u1", "j1")
	mod := func(f func(m map[string]any)) map[string]any {
		m := statusBody("u1", "j1")
		f(m)
		return m
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"known job", statusBody("u1", "j1"), 200, ""},
		{"booleans as strings", mod(func(m map[string]any) { m["image_links"] = "true" }), 200, ""},
		{"unknown job", statusBody("u1", "j9"), 404, ""},
		{"another user's job", statusBody("u2", "j1"), 404, ""},
		{"no job_id", mod(func(m map[string]any) { delete(m, "job_id") }), 400, "2213"},
		{"no partner_id", mod(func(m map[string]any) { delete(m, "partner_id") }), 400, "2213"},
		{"bad signature", mod(func(m map[string]any) { m["signature"] = "AAAA" }), 401, "2205"},
		{"history not a boolean", mod(func(m map[string]any) { m["history"] = "maybe" }), 400, "2204"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m, raw := e.post(JobStatusPath, c.body)
			if st != c.status || (c.code != "" && m["code"] != c.code) {
				t.Errorf("HTTP %d %s, want %d %s", st, raw, c.status, c.code)
			}
		})
	}
	if a := e.s.AuthStats(); a.StatusRequests != len(cases) || a.StatusUnknown != 2 || a.Unauthorized != 1 {
		t.Errorf("auth stats %+v", a)
	}
}

func TestAuthOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		user    string
		success bool
		code    string
		outcome string
	}{
		{"enrolled", Options{}, "u1", true, "1220", JobAuthenticated},
		{"in reject users", Options{AuthRejectUsers: []string{"u1"}}, "u1", false, "0821", JobNotAuthenticated},
		{"reject rate 1", Options{AuthRejectRate: 1}, "u1", false, "0821", JobNotAuthenticated},
		{"reject rate 0", Options{AuthRejectRate: 0}, "u1", true, "1220", JobAuthenticated},
		{"never enrolled, answered at the job", Options{AuthUnknownUser: "job"}, "ghost", false, "2210", JobNotAuthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newAuthEnv(t, c.opts, "u1")
			e.put(e.prepare(c.user, "j1"), "application/zip", goodZip(t))
			m := e.status(c.user, "j1")
			res, _ := m["result"].(map[string]any)
			if m["job_complete"] != true || m["job_success"] != c.success || res["ResultCode"] != c.code {
				t.Errorf("job_status %v, want complete, job_success %v, ResultCode %s", m, c.success, c.code)
			}
			if st := e.s.AuthStats(); st.Jobs[c.outcome] != 1 {
				t.Errorf("jobs by outcome %v, want one %s", st.Jobs, c.outcome)
			}
		})
	}
}

func TestAuthRejectRateIsAFraction(t *testing.T) {
	e := newAuthEnv(t, Options{AuthRejectRate: 0.3}, "u1")
	for i := range 200 {
		e.put(e.prepare("u1", fmt.Sprint("j", i)), "application/zip", goodZip(t))
	}
	st := e.s.AuthStats()
	if n := st.Jobs[JobNotAuthenticated]; n < 35 || n > 85 || n+st.Jobs[JobAuthenticated] != 200 {
		t.Errorf("jobs %v: want about 60 of 200 rejected", st.Jobs)
	}
}

func TestAuthFaults(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		status int
		count  func(AuthStats) int
	}{
		{"fail", Options{FailRate: 1}, 500, func(a AuthStats) int { return a.Failed }},
		{"throttle", Options{ThrottleRate: 1}, 429, func(a AuthStats) int { return a.Throttled }},
		{"refuse 2214", Options{Refuse: "2214"}, 403, func(a AuthStats) int { return a.Unauthorized }},
		{"quota", Options{Quota: 0.001, QuotaBurst: 1}, 429, func(a AuthStats) int { return a.QuotaRefused }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newAuthEnv(t, c.opts)
			e.s.mu.Lock()
			e.s.enrolled["u1"] = 1
			e.s.mu.Unlock()
			if c.opts.Quota > 0 {
				e.post(UploadPath, prepareBody("u1", "j0")) // takes the one token
			}
			st, _, raw := e.post(UploadPath, prepareBody("u1", "j1"))
			if st != c.status || c.count(e.s.AuthStats()) != 1 {
				t.Errorf("HTTP %d %s, stats %+v; want %d counted once", st, raw, e.s.AuthStats(), c.status)
			}
			if _, ok := e.s.AuthJobs()["j1"]; ok {
				t.Error("a refused prepare request made a job")
			}
		})
	}
	for _, c := range []struct {
		name string
		opts Options
		job  bool // whether the job exists after the dropped answer
	}{{"drop before", Options{DropBeforeRate: 1}, false}, {"drop after", Options{DropAfterRate: 1}, true}} {
		t.Run(c.name, func(t *testing.T) {
			e := newAuthEnv(t, c.opts)
			e.s.mu.Lock()
			e.s.enrolled["u1"] = 1
			e.s.mu.Unlock()
			if _, err := http.Post(e.hs.URL+UploadPath, "application/json", bytes.NewReader(mustJSON(prepareBody("u1", "j1")))); err == nil {
				t.Error("the connection was answered")
			}
			if _, ok := e.s.AuthJobs()["j1"]; ok != c.job || e.s.AuthStats().Dropped != 1 {
				t.Errorf("job exists %v, want %v; stats %+v", ok, c.job, e.s.AuthStats())
			}
		})
	}
}

func TestAuthOutage(t *testing.T) {
	e := newAuthEnv(t, Options{DownAnswer: "503"}, "u1")
	url := e.prepare("u1", "j1")
	if err := e.s.Apply(Control{DownFor: ptr("1h")}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{UploadPath, JobStatusPath} {
		if st, _, _ := e.post(path, statusBody("u1", "j1")); st != 503 {
			t.Errorf("%s during an outage: HTTP %d, want 503", path, st)
		}
	}
	if st := e.put(url, "application/zip", goodZip(t)); st != 503 {
		t.Errorf("PUT during an outage: HTTP %d, want 503", st)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAuthOptionsValidated(t *testing.T) {
	for _, o := range []Options{{AuthDelay: -1}, {AuthRejectRate: 1.5}, {AuthRejectRate: -0.1}, {AuthUnknownUser: "later"}} {
		o.PartnerID, o.APIKey = testPartner, testKey
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestStateReportsAuthJobs(t *testing.T) {
	e := newAuthEnv(t, Options{}, "u1")
	e.put(e.prepare("u1", "j1"), "application/zip", goodZip(t))
	e.prepare("u1", "j2")
	st := getState(t, e.hs.URL)
	if st.AuthJobs["j1"].Uploads != 1 || st.AuthJobs["j1"].UserID != "u1" || st.AuthJobs["j2"].Outcome != JobAwaitingUpload ||
		st.Auth.Jobs[JobAuthenticated] != 1 || st.Auth.Jobs[JobAwaitingUpload] != 1 || st.Auth.Uploads != 1 || st.Auth.Prepared != 2 {
		t.Errorf("state auth %+v jobs %+v", st.Auth, st.AuthJobs)
	}
	if st.Stats.Requests != 1 {
		t.Errorf("backfill requests %d: the authentication routes must not count there", st.Stats.Requests)
	}
}
