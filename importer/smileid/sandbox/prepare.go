package sandbox

// SmartSelfie Authentication, step one: POST /v1/upload prepares a job
// and hands out the URL its zip is PUT to.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
)

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
