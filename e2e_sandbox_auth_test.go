package main

// SmartSelfie Authentication against `bulkenroll sandbox`, end to end.
//
// The official Node SDK (npm smile-identity-core) runs SmartSelfie
// Authentication (job type 2) with WebApi.submit_job, unchanged, against
// `bulkenroll sandbox` behind a TLS front: the emulator is written from
// the SDK's behaviour, not only from our client's. The test needs node and
// the package; .ci/run installs both. It looks for the package in
// $BULKENROLL_NODE_SDK (a folder holding node_modules/smile-identity-core),
// then ~/.cache/bulkenroll-node-sdk, then node's own search path.

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/smileid/signature"
)

// nodeSDKScript submits each job given as JSON in $SID_JOBS with the
// official SDK and prints one JSON line per job: the job status the SDK
// resolved with, or the HTTP status and body it rejected with.
const nodeSDKScript = `
const { WebApi } = require('smile-identity-core');
const [partner, key, server] = [process.env.SID_PARTNER, process.env.SID_KEY, process.env.SID_SERVER];
const jobs = JSON.parse(process.env.SID_JOBS);
(async () => {
  for (const j of jobs) {
    const api = new WebApi(partner, '', key, server);
    try {
      const res = await api.submit_job(
        { user_id: j.user_id, job_id: j.job_id, job_type: 2 },
        j.images, {}, { return_job_status: true, return_history: true });
      console.log(JSON.stringify({ job_id: j.job_id, ok: true, res }));
    } catch (err) {
      const r = err.response;
      console.log(JSON.stringify({ job_id: j.job_id, ok: false, status: r ? r.status : 0,
        data: r ? r.data : null, message: String(err.message || err) }));
    }
  }
})();
`

// nodeSDKDir returns the folder node must search for smile-identity-core
// ("" for node's own search path), or skips the test saying what is missing.
func nodeSDKDir(t *testing.T, node string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("BULKENROLL_NODE_SDK"); d != "" {
		dirs = append(dirs, d)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "bulkenroll-node-sdk"))
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "node_modules", "smile-identity-core", "package.json")); err == nil {
			return d
		}
	}
	if exec.Command(node, "-e", "require.resolve('smile-identity-core')").Run() == nil {
		return ""
	}
	t.Skipf("the npm package smile-identity-core is not installed (looked in $BULKENROLL_NODE_SDK, %v and node's path); "+
		".ci/run installs it: npm install --prefix ~/.cache/bulkenroll-node-sdk smile-identity-core@3.2.1", dirs)
	return ""
}

// nodeJob is one job for nodeSDKScript.
type nodeJob struct {
	UserID string           `json:"user_id"`
	JobID  string           `json:"job_id"`
	Images []map[string]any `json:"images"`
}

// nodeOutcome is one line nodeSDKScript prints.
type nodeOutcome struct {
	JobID   string `json:"job_id"`
	OK      bool   `json:"ok"`
	Status  int    `json:"status"`
	Message string `json:"message"`
	Data    struct {
		Code string `json:"code"`
	} `json:"data"`
	Res struct {
		JobComplete bool            `json:"job_complete"`
		JobSuccess  bool            `json:"job_success"`
		Result      json.RawMessage `json:"result"`
		History     []any           `json:"history"`
	} `json:"res"`
}

func TestE2ENodeSDKSmartSelfieAuthentication(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs npm; .ci/run does it): the official Node SDK cannot run")
	}
	sdkDir := nodeSDKDir(t, node)
	t.Parallel()

	sb := e2eStartSandbox(t, "--auth-delay", "1s", "--auth-reject-users", "node-0003")
	dir := t.TempDir()
	manifest, ids := e2eManifest(t, dir, "node", 3)
	c := e2eNewCLI(t, sb.URL)
	e2eWantCode(t, c.Run("run", "--manifest", manifest, "--no-progress"), 0)

	// The TLS front: the SDK only speaks https. It passes the host and
	// scheme the client used, so the upload URL leads back through it.
	target, err := url.Parse(sb.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}})
	defer front.Close()
	caFile := filepath.Join(dir, "front.pem")
	e2eWriteFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}))

	selfie := filepath.Join(dir, "selfie.jpg")
	e2eWriteFile(t, selfie, e2eJPEG(t, 0))
	fileSelfie := []map[string]any{{"image_type_id": 0, "image": selfie}}
	b64Selfie := []map[string]any{{"image_type_id": 2, "image": base64.StdEncoding.EncodeToString(e2ePNG(t, 1))}}
	jobs := []nodeJob{
		{ids[0], "node-job-1", fileSelfie},
		{ids[1], "node-job-2", b64Selfie},
		{"node-0003", "node-job-3", fileSelfie}, // enrolled, in --auth-reject-users
		{"never-enrolled", "node-job-4", fileSelfie},
		{ids[0], "node-job-1", fileSelfie}, // job_id used before
	}
	arg, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", nodeSDKScript)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NODE_EXTRA_CA_CERTS=" + caFile,
		"SID_PARTNER=" + e2ePartner, "SID_KEY=" + e2eKey, "SID_JOBS=" + string(arg),
		"SID_SERVER=" + strings.TrimPrefix(front.URL, "https://") + "/v1"}
	if sdkDir != "" {
		cmd.Env = append(cmd.Env, "NODE_PATH="+filepath.Join(sdkDir, "node_modules"))
	}
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("the Node SDK ran %d jobs in %s", len(jobs), time.Since(start).Round(time.Millisecond))

	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(jobs) {
		t.Fatalf("node printed %d lines for %d jobs:\n%s", len(lines), len(jobs), out)
	}
	got := make([]nodeOutcome, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &got[i]); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
	}
	for i, want := range []struct {
		success bool
		code    string // ResultCode, or the error code of a refusal
	}{{true, "1220"}, {true, "1220"}, {false, "0821"}} {
		o := got[i]
		if !o.OK || !o.Res.JobComplete || o.Res.JobSuccess != want.success {
			t.Errorf("job %s: %+v, want complete with job_success %v", o.JobID, o, want.success)
			continue
		}
		var res struct {
			ResultCode string            `json:"ResultCode"`
			Actions    map[string]string `json:"Actions"`
		}
		if err := json.Unmarshal(o.Res.Result, &res); err != nil {
			t.Errorf("job %s: result %s: %v", o.JobID, o.Res.Result, err)
		}
		if res.ResultCode != want.code || res.Actions["Selfie_To_Registered_Selfie_Compare"] == "" || len(o.Res.History) != 1 {
			t.Errorf("job %s: result %s, history %v; want ResultCode %s with the compare action", o.JobID, o.Res.Result, o.Res.History, want.code)
		}
	}
	for i, code := range map[int]string{3: "2210", 4: "2215"} {
		if o := got[i]; o.OK || o.Status != 400 || o.Data.Code != code {
			t.Errorf("job %s: %+v, want HTTP 400 code %s", o.JobID, o, code)
		}
	}

	st := sb.State(t)
	for _, id := range []string{"node-job-1", "node-job-2", "node-job-3"} {
		if j := st.AuthJobs[id]; j.Uploads != 1 {
			t.Errorf("job %s: %d uploads, want 1 (state %+v)", id, j.Uploads, j)
		}
	}
	wantJobs := map[string]int{sandbox.JobAuthenticated: 2, sandbox.JobNotAuthenticated: 1}
	for k, n := range wantJobs {
		if st.Auth.Jobs[k] != n {
			t.Errorf("jobs %s: %d, want %d (%+v)", k, st.Auth.Jobs[k], n, st.Auth)
		}
	}
	// The SDK polls each uploaded job until it is complete: at least once
	// per job (more when a poll comes within the sandbox's --auth-delay,
	// which a busy machine may not do, so that is not asserted).
	if st.Auth.StatusRequests < 3 || st.Auth.Duplicates != 1 || st.Auth.NotEnrolled != 1 || st.Auth.Unauthorized != 0 {
		t.Errorf("auth stats %+v: want ≥ 3 status requests, 1 duplicate, 1 not enrolled, none unauthorized", st.Auth)
	}
}

// TestE2ESandboxAuthFlags checks the command's authentication flags end to
// end, with a plain Go client: --auth-delay 0s completes a job at once,
// --auth-reject-rate 1 rejects every job, and bad values stop the command
// with exit 2 naming the flag's setting.
func TestE2ESandboxAuthFlags(t *testing.T) {
	t.Parallel()
	c := e2eNewCLI(t, "")
	for _, bad := range [][]string{{"--auth-reject-rate", "2"}, {"--auth-delay", "-1s"}} {
		r := c.Run(append([]string{"sandbox", "--addr", "127.0.0.1:0"}, bad...)...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, "auth") {
			t.Errorf("%v: the error does not name the setting:\n%s", bad, r)
		}
	}

	sb := e2eStartSandbox(t, "--auth-delay", "0s", "--auth-reject-rate", "1")
	manifest, ids := e2eManifest(t, t.TempDir(), "flags", 1)
	e2eWantCode(t, e2eNewCLI(t, sb.URL).Run("run", "--manifest", manifest, "--no-progress"), 0)

	post := func(path string, body map[string]any) map[string]any {
		t.Helper()
		ts := signature.Timestamp(time.Now())
		body["timestamp"], body["signature"] = ts, signature.Sign(e2eKey, e2ePartner, ts)
		raw, _ := json.Marshal(body)
		resp, err := http.Post(sb.URL+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d %v %v", path, resp.StatusCode, m, err)
		}
		return m
	}
	prep := post(sandbox.UploadPath, map[string]any{"source_sdk": "rest_api", "source_sdk_version": "1.0.0",
		"file_name": "selfie.zip", "smile_client_id": e2ePartner, "model_parameters": map[string]any{},
		"partner_params": map[string]any{"user_id": ids[0], "job_id": "flags-job", "job_type": 2}})
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for name, data := range map[string][]byte{
		"info.json":  []byte(`{"images":[{"image_type_id":"0","image":"","file_name":"selfie.jpg"}]}`),
		"selfie.jpg": e2eJPEG(t, 3),
	} {
		w, _ := zw.Create(name)
		w.Write(data)
	}
	zw.Close()
	req, _ := http.NewRequest(http.MethodPut, prep["upload_url"].(string), &zb)
	req.Header.Set("Content-Type", "application/zip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: HTTP %d", resp.StatusCode)
	}
	st := post(sandbox.JobStatusPath, map[string]any{"user_id": ids[0], "job_id": "flags-job", "partner_id": e2ePartner})
	if st["job_complete"] != true || st["job_success"] != false {
		t.Errorf("job_status right after the upload: %v, want complete (--auth-delay 0s) and rejected (--auth-reject-rate 1)", st)
	}
	if got := sb.State(t).Auth.Jobs[sandbox.JobNotAuthenticated]; got != 1 {
		t.Errorf("jobs not authenticated: %d, want 1", got)
	}
}
