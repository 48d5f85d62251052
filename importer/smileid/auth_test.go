package smileid_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/signature"
	"bulkenroll/importer/testkit"
)

// TestPrepareUploadRequest checks the body of POST /v1/upload and the
// answer read back.
func TestPrepareUploadRequest(t *testing.T) {
	answer := `{"upload_url":"https://up.example/x?sig=1","ref_id":"r1","smile_job_id":"0000000007","camera_config":"null","code":"2202"}`
	hs, got := captureServer(t, func(w http.ResponseWriter, _ []byte) { fmt.Fprint(w, answer) })
	c := testkit.NewClient(t, hs.URL, nil)
	up, err := c.PrepareUpload(context.Background(), smileid.Prepare{UserID: "u1", JobID: "j1", CallbackURL: "https://cb.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if up.UploadURL != "https://up.example/x?sig=1" || up.SmileJobID != "0000000007" || up.RefID != "r1" || string(up.Raw) != answer {
		t.Fatalf("answer read as %+v", up)
	}
	reqs := got()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/v1/upload" {
		t.Fatalf("requests %+v", reqs)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"source_sdk": "rest_api", "source_sdk_version": "1.0.0", "file_name": "selfie.zip",
		"smile_client_id": testkit.Partner, "callback_url": "https://cb.example/"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	pp, _ := body["partner_params"].(map[string]any)
	if pp["user_id"] != "u1" || pp["job_id"] != "j1" || pp["job_type"] != float64(2) {
		t.Errorf("partner_params %v", pp)
	}
	if mp, ok := body["model_parameters"].(map[string]any); !ok || len(mp) != 0 {
		t.Errorf("model_parameters %v", body["model_parameters"])
	}
	ts, _ := body["timestamp"].(string)
	sig, _ := body["signature"].(string)
	if !signature.Verify(testkit.APIKey, testkit.Partner, ts, sig) {
		t.Errorf("signature %q over %q does not verify", sig, ts)
	}
	if bytes.Contains(reqs[0].body, []byte(testkit.APIKey)) {
		t.Error("the body carries the API key")
	}
}

// TestUploadErrorsClassified checks the classes of /v1/upload's refusals:
// the code and text are kept.
func TestUploadErrorsClassified(t *testing.T) {
	const (
		exists = "job exists"
		cannot = "cannot authenticate"
	)
	cases := []struct {
		status int
		body   string
		want   string // exists, cannot, or the Class's name
	}{
		{400, `{"code":"2215","error":"Job already exists. Did you mean to set the retry flag to true?"}`, exists},
		{400, `{"code":"2210","error":"No enrolled user found"}`, cannot},
		{400, `{"code":"2216","error":"no photo"}`, cannot},
		{401, `{"code":"2205","error":"You are not authorized to do that."}`, smileid.Account.String()},
		{403, `{"code":"2214","error":"product not activated"}`, smileid.Account.String()},
		{403, `{"code":"2220","error":"production not enabled"}`, smileid.Account.String()},
		{400, `{"code":"2213","error":"missing"}`, smileid.Permanent.String()},
		{503, `{"code":"2201","error":"System Error"}`, smileid.Transient.String()},
		{429, ``, smileid.Transient.String()},
		{200, `{"ok":true}`, smileid.Foreign.String()},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status, tc.body), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer hs.Close()
			c := testkit.NewClient(t, hs.URL, nil)
			_, err := c.PrepareUpload(context.Background(), smileid.Prepare{UserID: "u", JobID: "j"})
			got := smileid.Classify(err).String()
			switch {
			case smileid.JobUsedBefore(err):
				got = exists
			case smileid.CannotAuthenticate(err):
				got = cannot
			}
			if got != tc.want {
				t.Fatalf("%s, want %s (err %v)", got, tc.want, err)
			}
			ae := testkit.MustAs[*smileid.APIError](t, err)
			if ae.Status != tc.status {
				t.Errorf("status %d", ae.Status)
			}
			var e struct{ Code, Error string }
			if json.Unmarshal([]byte(tc.body), &e) == nil && e.Code != "" && (ae.Code != e.Code || ae.Text != e.Error) {
				t.Errorf("kept %q %q, want %q %q", ae.Code, ae.Text, e.Code, e.Error)
			}
		})
	}
}

// TestUploadZip checks the PUT: its method, content type, and a zip with
// info.json naming the selfie (type 0) and the liveness frames (type 4).
func TestUploadZip(t *testing.T) {
	hs, got := captureServer(t, func(w http.ResponseWriter, _ []byte) {})
	c := testkit.NewClient(t, hs.URL, nil)
	selfie := testkit.Photo(t, "jpeg", 1)
	frame := testkit.Photo(t, "png", 2)
	server := json.RawMessage(`{"upload_url":"x","smile_job_id":"0000000001","code":"2202"}`)
	z, err := c.BuildAuthZip(smileid.AuthZip{UserID: "u1", JobID: "j1", Server: server,
		Selfie:   smileid.ZipImage{FileName: "/photos/u1.jpg", Data: selfie},
		Liveness: []smileid.ZipImage{{FileName: "f.png", Data: frame}, {FileName: "dir/f.png", Data: frame}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(context.Background(), hs.URL+"/put/here?sig=abc", z); err != nil {
		t.Fatal(err)
	}
	reqs := got()
	if len(reqs) != 1 || reqs[0].method != http.MethodPut || reqs[0].path != "/put/here" || reqs[0].header.Get("Content-Type") != "application/zip" {
		t.Fatalf("request %+v", reqs)
	}
	zr, err := zip.NewReader(bytes.NewReader(reqs[0].body), int64(len(reqs[0].body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = b
	}
	var info struct {
		Misc struct {
			Signature, Timestamp string
			PartnerParams        struct {
				UserID  string `json:"user_id"`
				JobID   string `json:"job_id"`
				JobType int    `json:"job_type"`
			} `json:"partner_params"`
		} `json:"misc_information"`
		Images []struct {
			ImageTypeID int    `json:"image_type_id"`
			FileName    string `json:"file_name"`
		} `json:"images"`
		Server json.RawMessage `json:"server_information"`
	}
	if err := json.Unmarshal(files["info.json"], &info); err != nil {
		t.Fatalf("info.json: %v", err)
	}
	if !signature.Verify(testkit.APIKey, testkit.Partner, info.Misc.Timestamp, info.Misc.Signature) {
		t.Error("info.json's signature does not verify")
	}
	if info.Misc.PartnerParams.UserID != "u1" || info.Misc.PartnerParams.JobID != "j1" || info.Misc.PartnerParams.JobType != 2 {
		t.Errorf("partner params %+v", info.Misc.PartnerParams)
	}
	if string(info.Server) != string(server) {
		t.Errorf("server_information %s", info.Server)
	}
	if len(info.Images) != 3 || info.Images[0].ImageTypeID != 0 || info.Images[1].ImageTypeID != 4 || info.Images[2].ImageTypeID != 4 {
		t.Fatalf("images %+v", info.Images)
	}
	if info.Images[1].FileName == info.Images[2].FileName {
		t.Errorf("two frames share the name %q", info.Images[1].FileName)
	}
	if !bytes.Equal(files[info.Images[0].FileName], selfie) || !bytes.Equal(files[info.Images[2].FileName], frame) {
		t.Error("the zip's image files are not the images, unchanged")
	}
	if _, err := c.BuildAuthZip(smileid.AuthZip{Selfie: smileid.ZipImage{Data: selfie}, Liveness: make([]smileid.ZipImage, 9)}); err == nil {
		t.Error("nine liveness frames accepted")
	}
}

// TestUploadPutRefused keeps a storage service's refusal as an error.
func TestUploadPutRefused(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, "<Error><Code>SignatureDoesNotMatch</Code></Error>")
	}))
	defer hs.Close()
	c := testkit.NewClient(t, hs.URL, nil)
	err := c.Upload(context.Background(), hs.URL+"/x", []byte("zip"))
	ae := testkit.MustAs[*smileid.APIError](t, err)
	if ae.Status != 403 || ae.Excerpt == "" {
		t.Errorf("error %+v", ae)
	}
}

// signedStatus is a job_status answer signed with key.
func signedStatus(key string, fields map[string]any) string {
	ts := "2024-05-24T09:45:43.044Z"
	fields["timestamp"] = ts
	fields["signature"] = signature.Sign(key, testkit.Partner, ts)
	b, _ := json.Marshal(fields)
	return string(b)
}

// TestJobStatus checks the request and the answers: a string result
// before processing, an object after, unsigned and forged answers refused,
// an answer about another job refused.
func TestJobStatus(t *testing.T) {
	result := map[string]any{"ResultCode": "1220", "ResultText": "Authenticated", "SmileJobID": "0000000009",
		"ConfidenceValue": "99", "Actions": map[string]any{"Selfie_To_Registered_Selfie_Compare": "Completed"},
		"PartnerParams": map[string]any{"user_id": "u1", "job_id": "j1", "job_type": "2"}}
	cases := []struct {
		name   string
		answer string
		check  func(t *testing.T, js *smileid.JobStatus, err error)
	}{
		{"string result", signedStatus(testkit.APIKey, map[string]any{"job_complete": false, "job_success": false, "result": "No zip uploaded"}),
			func(t *testing.T, js *smileid.JobStatus, err error) {
				if err != nil || js.JobComplete || js.Result != nil || js.ResultMessage != "No zip uploaded" {
					t.Fatalf("%+v %v", js, err)
				}
			}},
		{"object result", signedStatus(testkit.APIKey, map[string]any{"job_complete": true, "job_success": true, "code": "2302", "result": result}),
			func(t *testing.T, js *smileid.JobStatus, err error) {
				if err != nil || !js.JobComplete || !js.JobSuccess || js.Code != "2302" || js.Result == nil {
					t.Fatalf("%+v %v", js, err)
				}
				if js.Result.ResultCode != "1220" || js.Result.Actions[smileid.CompareAction] != "Completed" || js.Result.PartnerParams.JobType != "2" {
					t.Errorf("result %+v", js.Result)
				}
				if c, ok := js.Result.Confidence(); !ok || c != 99 {
					t.Errorf("confidence %v %v", c, ok)
				}
			}},
		{"numeric confidence", signedStatus(testkit.APIKey, map[string]any{"job_complete": true, "job_success": true, "result": map[string]any{"ResultCode": "1220", "ConfidenceValue": 97.5}}),
			func(t *testing.T, js *smileid.JobStatus, err error) {
				if c, ok := js.Result.Confidence(); err != nil || !ok || c != 97.5 {
					t.Errorf("confidence %v %v %v", c, ok, err)
				}
			}},
		{"unsigned", `{"job_complete":true,"job_success":true,"result":{"ResultCode":"1220"}}`,
			func(t *testing.T, js *smileid.JobStatus, err error) {
				ae := testkit.MustAs[*smileid.APIError](t, err)
				if ae.Reason == "" || smileid.Classify(err) != smileid.Transient {
					t.Errorf("%+v", ae)
				}
			}},
		{"forged", signedStatus("another key", map[string]any{"job_complete": true, "job_success": true, "result": result}),
			func(t *testing.T, js *smileid.JobStatus, err error) {
				testkit.MustAs[*smileid.APIError](t, err)
			}},
		{"another job", signedStatus(testkit.APIKey, map[string]any{"job_complete": true, "job_success": true,
			"result": map[string]any{"ResultCode": "1220", "PartnerParams": map[string]any{"user_id": "u2", "job_id": "j1"}}}),
			func(t *testing.T, js *smileid.JobStatus, err error) {
				if ae := testkit.MustAs[*smileid.APIError](t, err); !ae.WrongUser {
					t.Errorf("%+v", ae)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs, got := captureServer(t, func(w http.ResponseWriter, _ []byte) { fmt.Fprint(w, tc.answer) })
			c := testkit.NewClient(t, hs.URL, nil)
			js, err := c.JobStatus(context.Background(), "u1", "j1")
			tc.check(t, js, err)
			reqs := got()
			var body map[string]any
			if len(reqs) != 1 || reqs[0].path != "/v1/job_status" || json.Unmarshal(reqs[0].body, &body) != nil {
				t.Fatalf("requests %+v", reqs)
			}
			if body["user_id"] != "u1" || body["job_id"] != "j1" || body["partner_id"] != testkit.Partner || body["image_links"] != false || body["history"] != false {
				t.Errorf("body %v", body)
			}
			if !signature.Verify(testkit.APIKey, testkit.Partner, body["timestamp"].(string), body["signature"].(string)) {
				t.Error("request signature does not verify")
			}
		})
	}
}

// TestDecideAuth checks the outcome of each kind of job result.
func TestDecideAuth(t *testing.T) {
	res := func(code, text, compare string) *smileid.JobResult {
		r := &smileid.JobResult{ResultCode: code, ResultText: text, Actions: map[string]string{}}
		if compare != "" {
			r.Actions[smileid.CompareAction] = compare
		}
		return r
	}
	cases := []struct {
		name string
		js   *smileid.JobStatus
		want smileid.AuthOutcome
	}{
		{"1220", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("1220", "Authenticated", "Completed")}, smileid.Authenticated},
		{"0824 provisional", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0824", "Provisional Authentication - Under Review", "Completed")}, smileid.PendingReview},
		{"incomplete", &smileid.JobStatus{ResultMessage: "No zip uploaded"}, smileid.PendingReview},
		{"unknown code, failed job", &smileid.JobStatus{JobComplete: true, Result: res("0899", "Failed Authentication", "Failed")}, smileid.NotAuthenticated},
		{"unknown code, compare passed", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0820", "Authenticated", "Passed")}, smileid.Authenticated},
		{"unknown code, compare failed", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0898", "Something", "Failed")}, smileid.NotAuthenticated},
		{"spoof text", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0821", "Failed Authentication - Possible Spoof Detected", "")}, smileid.NotAuthenticated},
		{"under review action", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0897", "x", "Under Review")}, smileid.PendingReview},
		{"undecidable", &smileid.JobStatus{JobComplete: true, JobSuccess: true, Result: res("0896", "x", "Not Applicable")}, smileid.AuthError},
		{"2210", &smileid.JobStatus{JobComplete: true, Result: res("2210", "No enrolled user found", "")}, smileid.NotAuthenticated},
		{"complete, no result, failed", &smileid.JobStatus{JobComplete: true, ResultMessage: "No enrolled user"}, smileid.NotAuthenticated},
	}
	for _, tc := range cases {
		if got, why := smileid.DecideAuth(tc.js); got != tc.want || why == "" {
			t.Errorf("%s: %q (%s), want %q", tc.name, got, why, tc.want)
		}
	}
	for n, want := range map[int]int{0: 0, 1: 2, 4: 2, 5: 4, 20: 4} {
		if got := smileid.PollDelay(n); int(got.Seconds()) != want {
			t.Errorf("PollDelay(%d) = %v, want %ds", n, got, want)
		}
	}
}
