package sandbox

// SmartSelfie Authentication, step three: POST /v1/job_status answers a
// job's signed status, incomplete until Options.AuthDelay after its zip
// arrived.

import (
	"net/http"

	"bulkenroll/importer/smileid/signature"
)

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
