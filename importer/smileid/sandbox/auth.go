package sandbox

// SmartSelfie Authentication (job type 2), steps one and three: POST
// /v1/upload prepares a job and hands out an upload URL (zip.go receives
// the zip), POST /v1/job_status answers the job's signed status. Written
// from the official server SDKs' behaviour (smileid-protocol.md §1).

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// maxSignedBody bounds the JSON bodies of /v1/upload and /v1/job_status,
// which carry no photo.
const maxSignedBody = 1 << 20

// authResult is how a complete job ends: its result code and text, the
// two actions that matter, and job_success.
type authResult struct {
	success                   bool
	code, text                string
	compare, liveness, selfie string
	confidence                string
}

// The results the emulator gives, kept as data. Only 1220 "Authenticated"
// is documented for job type 2 (seed002); 0821 is known from third-party
// code only; 0903 and 0001 are documented job results; 2203 and 2210 are
// documented error codes, used here as the code of a failed job.
var (
	resultAuthenticated  = &authResult{true, "1220", "Authenticated", "Completed", "Passed", "Passed", "99"}
	resultRejected       = &authResult{false, "0821", "Failed Authentication - Possible Spoof Detected", "Failed", "Failed", "Passed", "0"}
	resultNotEnrolled    = &authResult{false, "2210", "No enrolled user found", na, na, "Passed", "0"}
	resultZipCorrupt     = &authResult{false, "0903", "Zip Corrupt", na, na, "Failed", "0"}
	resultInfoInvalid    = &authResult{false, "2203", "Invalid info.json", na, na, "Failed", "0"}
	resultSelfieUnusable = &authResult{false, "0001", "Data Invalid - Selfie image unusable", na, na, "Failed", "0"}
)

var (
	boolType = reflect.TypeFor[bool]()
	intType  = reflect.TypeFor[int]()
)

// flexBool reads a JSON boolean, the strings "true"/"false" (older
// documents and info.json use those), or null.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(b)), `"`)) {
	case "true":
		*f = true
	case "false", "", "null":
		*f = false
	default:
		return &json.UnmarshalTypeError{Value: string(b), Type: boolType}
	}
	return nil
}

// flexInt reads a JSON number or a string holding one (job_type and
// image_type_id come both ways); Set says whether a value was there.
type flexInt struct {
	N   int
	Set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	t := strings.TrimSpace(string(b))
	if t == "null" {
		*f = flexInt{}
		return nil
	}
	n, err := strconv.Atoi(strings.Trim(t, `"`))
	if err != nil {
		return &json.UnmarshalTypeError{Value: t, Type: intType}
	}
	*f = flexInt{N: n, Set: true}
	return nil
}

// prepareRequest is the body of POST /v1/upload.
type prepareRequest struct {
	SourceSDK        string         `json:"source_sdk"`
	SourceSDKVersion string         `json:"source_sdk_version"`
	FileName         string         `json:"file_name"`
	SmileClientID    string         `json:"smile_client_id"`
	PartnerID        string         `json:"partner_id"` // not sent by the SDKs; accepted for smile_client_id
	Timestamp        string         `json:"timestamp"`
	Signature        string         `json:"signature"`
	PartnerParams    *prepareParams `json:"partner_params"`
	CallbackURL      string         `json:"callback_url"`
	Retry            flexBool       `json:"retry"`
}

type prepareParams struct {
	UserID  string  `json:"user_id"`
	JobID   string  `json:"job_id"`
	JobType flexInt `json:"job_type"`
}

// prepareAnswer is the 200 answer of /v1/upload.
type prepareAnswer struct {
	UploadURL    string `json:"upload_url"`
	RefID        string `json:"ref_id"`
	SmileJobID   string `json:"smile_job_id"`
	CameraConfig string `json:"camera_config"`
	Code         string `json:"code"`
}

// prepareUpload serves POST /v1/upload.
func (s *Server) prepareUpload(w http.ResponseWriter, r *http.Request) {
	s.countAuth(func(st *AuthStats) { st.Prepares++ })
	s.serveAuth(w, r, s.decidePrepare)
}

// serveAuth answers a request of the authentication routes: during an
// outage as the outage says, otherwise with decide's answer after the
// latency.
func (s *Server) serveAuth(w http.ResponseWriter, r *http.Request, decide func(http.ResponseWriter, *http.Request) answer) {
	s.mu.Lock()
	down := s.isDown(s.now())
	s.mu.Unlock()
	if down {
		s.answerDown(w)
		return
	}
	s.reply(w, r, decide(w, r))
}

// decidePrepare runs the checks of a prepare request in order: body,
// required fields (2213), signature (2205), job type (2212), the quota and
// account refusals, the fault dice, a reused job_id (2215), a user never
// enrolled (2210); then it creates the job.
func (s *Server) decidePrepare(w http.ResponseWriter, r *http.Request) answer {
	reject := func(a *answer) answer {
		s.countAuth(func(st *AuthStats) { st.Rejected++ })
		return *a
	}
	buf := getBuf()
	defer putBuf(buf)
	if a := readBody(w, r, buf, maxSignedBody); a != nil {
		return reject(a)
	}
	var req prepareRequest
	if a := decodeJSON(buf.Bytes(), &req); a != nil {
		return reject(a)
	}
	partner := req.SmileClientID
	if partner == "" {
		partner = req.PartnerID
	}
	var pp prepareParams
	if req.PartnerParams != nil {
		pp = *req.PartnerParams
	}
	if name := firstMissing(
		"source_sdk", req.SourceSDK, "source_sdk_version", req.SourceSDKVersion,
		"smile_client_id", partner, "timestamp", req.Timestamp, "signature", req.Signature,
		"partner_params.user_id", pp.UserID, "partner_params.job_id", pp.JobID,
	); name != "" {
		return reject(rejection(http.StatusBadRequest, "2213", "Missing parameter: "+name))
	}
	if !pp.JobType.Set {
		return reject(rejection(http.StatusBadRequest, "2213", "Missing parameter: partner_params.job_type"))
	}
	if a := s.checkSigned(partner, req.Timestamp, req.Signature); a != nil {
		return *a
	}
	if pp.JobType.N != 2 {
		return reject(rejection(http.StatusBadRequest, "2212",
			fmt.Sprintf("Invalid job_type %d: the emulator serves job type 2 on this route", pp.JobType.N)))
	}
	if wait, ok := s.admit(); !ok {
		s.countAuth(func(st *AuthStats) { st.QuotaRefused++ })
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too Many Requests"},
			retry: retryAfterHeader(wait)}
	}
	dropAfter := false
	switch s.roll() {
	case outThrottled:
		s.countAuth(func(st *AuthStats) { st.Throttled++ })
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too many requests"}}
	case outFailed:
		s.countAuth(func(st *AuthStats) { st.Failed++ })
		return *rejection(http.StatusInternalServerError, "2201", "System Error")
	case outDroppedBefore:
		s.countAuth(func(st *AuthStats) { st.Dropped++ })
		return answer{drop: true}
	case outDroppedAfter:
		dropAfter = true
	}

	s.mu.Lock()
	j, a := s.prepareJob(pp, bool(req.Retry))
	var body prepareAnswer
	if j != nil {
		body = prepareAnswer{UploadURL: s.uploadURL(r, j.refID), RefID: j.refID, SmileJobID: j.smileJobID,
			CameraConfig: "null", Code: "2202"}
		if dropAfter {
			s.auth.stats.Dropped++
		}
	}
	s.mu.Unlock()
	switch {
	case a != nil:
		return *a
	case dropAfter:
		return answer{drop: true}
	}
	return answer{status: http.StatusOK, body: body}
}

// prepareJob creates the job pp names, or with retry set answers again
// for the same job prepared before for the same user; otherwise it returns
// the refusal: 2215 for a job_id used before, 2210 for a user never
// enrolled (unless Options.AuthUnknownUser is "job"). The caller holds mu.
func (s *Server) prepareJob(pp prepareParams, retry bool) (*authJob, *answer) {
	l := &s.auth
	if j, ok := l.jobs[pp.JobID]; ok {
		if retry && j.userID == pp.UserID {
			j.prepares++
			l.stats.Retried++
			return j, nil
		}
		l.stats.Duplicates++
		return nil, rejection(http.StatusBadRequest, "2215", "Job already exists. Did you mean to set the retry flag to true?")
	}
	enrolled := s.enrolled[pp.UserID] > 0
	if !enrolled && s.opts.AuthUnknownUser != "job" {
		l.stats.NotEnrolled++
		return nil, rejection(http.StatusBadRequest, "2210", "No enrolled user found")
	}
	n := s.jobSeq.Add(1)
	sj := fmt.Sprintf("%010d", (s.jobBase+n)%10_000_000_000)
	j := &authJob{userID: pp.UserID, jobID: pp.JobID, smileJobID: sj, enrolled: enrolled, prepares: 1,
		refID: fmt.Sprintf("%s-%s-%08x", s.opts.PartnerID, sj, s.jobTag^uint32(n*0x9e3779b9))}
	l.jobs[j.jobID] = j
	l.refs[j.refID] = j
	l.stats.Prepared++
	return j, nil
}

// uploadURL is the URL a job's zip is PUT to: this emulator, as the
// client reached it (a TLS front's X-Forwarded-Proto and X-Forwarded-Host
// are honoured), with a signature in the query as a pre-signed storage
// URL has.
func (s *Server) uploadURL(r *http.Request, ref string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	q := url.Values{"Content-Type": {"application/zip"}, "Signature": {s.uploadSignature(ref)}}
	return scheme + "://" + host + UploadURLPrefix + url.PathEscape(ref) + "/selfie.zip?" + q.Encode()
}

// uploadSignature signs a ref_id with the API key, so that only the URLs
// the emulator handed out are accepted.
func (s *Server) uploadSignature(ref string) string {
	m := hmac.New(sha256.New, []byte(s.opts.APIKey))
	m.Write([]byte("upload\x00" + ref))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// checkSigned checks the partner and signature of a signed request and
// the account-level refusals of Options.Refuse, counting a refusal. The
// timestamp is hashed as sent: the SDKs format it differently.
func (s *Server) checkSigned(partner, ts, sig string) *answer {
	var a *answer
	switch {
	case partner != s.opts.PartnerID || !signature.Verify(s.opts.APIKey, partner, ts, sig):
		a = rejection(http.StatusUnauthorized, "2205", "Unauthorized")
	case s.opts.Refuse == "2214":
		a = rejection(http.StatusForbidden, "2214", "Product not activated")
	case s.opts.Refuse == "2220":
		a = rejection(http.StatusForbidden, "2220", "Production not enabled")
	case s.opts.Refuse == "2205":
		a = rejection(http.StatusUnauthorized, "2205", "Unauthorized")
	default:
		return nil
	}
	s.countAuth(func(st *AuthStats) { st.Unauthorized++ })
	return a
}

// firstMissing takes pairs of a field's name and value and returns the
// name of the first empty value, or "".
func firstMissing(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return pairs[i]
		}
	}
	return ""
}

// statusRequest is the body of POST /v1/job_status.
type statusRequest struct {
	UserID     string   `json:"user_id"`
	JobID      string   `json:"job_id"`
	PartnerID  string   `json:"partner_id"`
	Timestamp  string   `json:"timestamp"`
	Signature  string   `json:"signature"`
	ImageLinks flexBool `json:"image_links"`
	History    flexBool `json:"history"`
}

// jobResult is the result object of a complete job.
type jobResult struct {
	Source          string      `json:"Source"`
	Actions         authActions `json:"Actions"`
	ResultCode      string      `json:"ResultCode"`
	ResultText      string      `json:"ResultText"`
	ResultType      string      `json:"ResultType"`
	SmileJobID      string      `json:"SmileJobID"`
	JSONVersion     string      `json:"JSONVersion"`
	IsFinalResult   string      `json:"IsFinalResult"`
	PartnerParams   jobParams   `json:"PartnerParams"`
	ConfidenceValue string      `json:"ConfidenceValue"`
}

// jobParams are a result's PartnerParams; job_type comes back a string.
type jobParams struct {
	JobID   string `json:"job_id"`
	UserID  string `json:"user_id"`
	JobType string `json:"job_type"`
}

// authActions are the twelve Actions of a job type 2 result (seed002).
type authActions struct {
	HumanReviewCompare              string `json:"Human_Review_Compare"`
	HumanReviewLivenessCheck        string `json:"Human_Review_Liveness_Check"`
	HumanReviewUpdateSelfie         string `json:"Human_Review_Update_Selfie"`
	LivenessCheck                   string `json:"Liveness_Check"`
	RegisterSelfie                  string `json:"Register_Selfie"`
	ReturnPersonalInfo              string `json:"Return_Personal_Info"`
	SelfieProvided                  string `json:"Selfie_Provided"`
	SelfieToIDAuthorityCompare      string `json:"Selfie_To_ID_Authority_Compare"`
	SelfieToIDCardCompare           string `json:"Selfie_To_ID_Card_Compare"`
	SelfieToRegisteredSelfieCompare string `json:"Selfie_To_Registered_Selfie_Compare"`
	UpdateRegisteredSelfieOnFile    string `json:"Update_Registered_Selfie_On_File"`
	VerifyIDNumber                  string `json:"Verify_ID_Number"`
}

// statusAnswer is the signed 200 answer of /v1/job_status. Result is the
// string "No zip uploaded" (or "Processing") until the job is complete,
// then a jobResult. History and ImageLinks appear only when asked for.
type statusAnswer struct {
	Timestamp   string             `json:"timestamp"`
	Signature   string             `json:"signature"`
	JobComplete bool               `json:"job_complete"`
	JobSuccess  bool               `json:"job_success"`
	Code        string             `json:"code,omitempty"`
	Result      any                `json:"result"`
	History     *[]jobResult       `json:"history,omitempty"`
	ImageLinks  *map[string]string `json:"image_links,omitempty"`
}

// jobStatus serves POST /v1/job_status.
func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request) {
	s.countAuth(func(st *AuthStats) { st.StatusRequests++ })
	s.serveAuth(w, r, s.decideStatus)
}

// decideStatus answers a job's status. A job the emulator handed out
// always gets a signed 200, whatever its state: the official SDKs poll
// again on any error, without end.
func (s *Server) decideStatus(w http.ResponseWriter, r *http.Request) answer {
	buf := getBuf()
	defer putBuf(buf)
	if a := readBody(w, r, buf, maxSignedBody); a != nil {
		return *a
	}
	var req statusRequest
	if a := decodeJSON(buf.Bytes(), &req); a != nil {
		return *a
	}
	if name := firstMissing("user_id", req.UserID, "job_id", req.JobID, "partner_id", req.PartnerID,
		"timestamp", req.Timestamp, "signature", req.Signature); name != "" {
		return *rejection(http.StatusBadRequest, "2213", "Missing parameter: "+name)
	}
	if a := s.checkSigned(req.PartnerID, req.Timestamp, req.Signature); a != nil {
		return *a
	}
	now := s.now()
	s.mu.Lock()
	j, ok := s.auth.jobs[req.JobID]
	if !ok || j.userID != req.UserID {
		s.auth.stats.StatusUnknown++
		s.mu.Unlock()
		return *rejection(http.StatusNotFound, "", "No job "+req.JobID+" for user "+req.UserID)
	}
	outcome := s.outcomeAt(j, now)
	sj, res := j.smileJobID, j.result
	s.mu.Unlock()

	ts := signature.Timestamp(now)
	a := statusAnswer{Timestamp: ts, Signature: signature.Sign(s.opts.APIKey, s.opts.PartnerID, ts)}
	var history []jobResult
	switch outcome {
	case JobAwaitingUpload:
		a.Result = "No zip uploaded"
	case JobProcessing:
		a.Result = "Processing"
	default:
		jr := res.jobResult(req.UserID, req.JobID, sj)
		a.JobComplete, a.JobSuccess, a.Code, a.Result = true, res.success, "2302", jr
		history = []jobResult{jr}
	}
	if req.History {
		if history == nil {
			history = []jobResult{}
		}
		a.History = &history
	}
	if req.ImageLinks {
		links := map[string]string{"error": "the sandbox keeps no images"}
		a.ImageLinks = &links
	}
	return answer{status: http.StatusOK, body: a}
}

// jobResult is the result object of a job that ended as r says.
func (r *authResult) jobResult(userID, jobID, smileJobID string) jobResult {
	return jobResult{
		Source: "WebAPI",
		Actions: authActions{
			HumanReviewCompare: na, HumanReviewLivenessCheck: na, HumanReviewUpdateSelfie: na,
			LivenessCheck: r.liveness, RegisterSelfie: na, ReturnPersonalInfo: na,
			SelfieProvided:             r.selfie,
			SelfieToIDAuthorityCompare: na, SelfieToIDCardCompare: na,
			SelfieToRegisteredSelfieCompare: r.compare, UpdateRegisteredSelfieOnFile: na, VerifyIDNumber: na,
		},
		ResultCode: r.code, ResultText: r.text, ResultType: "SAIA", SmileJobID: smileJobID,
		JSONVersion: "1.0.0", IsFinalResult: "true",
		PartnerParams:   jobParams{JobID: jobID, UserID: userID, JobType: "2"},
		ConfidenceValue: r.confidence,
	}
}

// decideResult says how a job whose zip was usable ends: a user never
// enrolled, a user in AuthRejectUsers, or the reject die. The caller
// holds mu.
func (s *Server) decideResult(j *authJob) *authResult {
	switch {
	case !j.enrolled:
		return resultNotEnrolled
	case s.auth.rejectUsers[j.userID]:
		return resultRejected
	case s.opts.AuthRejectRate > 0 && s.authDice.Float64() < s.opts.AuthRejectRate:
		return resultRejected
	}
	return resultAuthenticated
}

// uploaded marks j's first zip as arrived at now with result res.
func (j *authJob) uploaded(now time.Time, res *authResult) {
	if j.uploadedAt.IsZero() {
		j.uploadedAt, j.result = now, res
	}
}
