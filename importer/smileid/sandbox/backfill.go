package sandbox

// POST /v1/backfill_users (job type 4): the checks in the API's order, the
// enrollment, and the signed answer.

import (
	"fmt"
	"net/http"
	"strconv"

	"bulkenroll/importer/smileid/signature"
)

// outcome identifies the Stats counter an answer belongs to.
type outcome int

const (
	outEnrolled outcome = iota
	outAlready
	outRejected
	outFailed
	outThrottled
	outDroppedBefore
	outDroppedAfter
	outUnauthorized
	outQuota
)

func (s *Server) backfill(w http.ResponseWriter, r *http.Request) { s.serveCounted(w, r, s.decide) }

// serveCounted answers a request of an enrollment route (backfill,
// compare): counted on arrival, answered as an outage does during one,
// otherwise as decide says, counted by its outcome, after the latency.
func (s *Server) serveCounted(w http.ResponseWriter, r *http.Request, decide func(http.ResponseWriter, *http.Request) (answer, outcome)) {
	down := s.arrive()
	defer s.leave()
	if down {
		s.answerDown(w)
		return
	}
	a, out := decide(w, r)
	s.count(out)
	s.reply(w, r, a)
}

// decide runs the checks of one request in the API's order and, if it gets
// that far, enrolls the user.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) (answer, outcome) {
	reject := func(status int, code, text string) (answer, outcome) {
		return *rejection(status, code, text), outRejected
	}

	buf := getBuf()
	defer putBuf(buf)
	if a := readBody(w, r, buf, s.maxBody); a != nil {
		return *a, outRejected
	}
	b, a := s.parseBackfill(buf.Bytes())
	if a != nil {
		return *a, outRejected
	}
	req, photo, photoText, info := b.request, b.photo, b.photoText, b.info

	for _, f := range [...]struct {
		name  string
		empty bool
	}{
		{"partner_id", req.PartnerID == ""},
		{"timestamp", req.Timestamp == ""},
		{"signature", req.Signature == ""},
		{"user_id", req.UserID == ""},
		{"user_created_at", req.UserCreatedAt == ""},
		{"photo", len(photo) == 0},
	} {
		if f.empty {
			return reject(http.StatusBadRequest, "2413", "Missing parameter: "+f.name)
		}
	}

	if !s.authorised(req.PartnerID, req.Timestamp, req.Signature) {
		return answer{status: http.StatusUnauthorized,
			body: errBody{Code: "2205", Error: "Unauthorized"}}, outUnauthorized
	}
	if wait, ok := s.admit(); !ok {
		return answer{status: http.StatusTooManyRequests, body: errBody{Error: "Too Many Requests"},
			retry: retryAfterHeader(wait)}, outQuota
	}
	if s.throttleFirst(req.UserID) {
		return answer{status: http.StatusTooManyRequests,
			body: errBody{Error: "Too many requests"}}, outThrottled
	}
	switch s.opts.Refuse {
	case "2214":
		return answer{status: http.StatusForbidden,
			body: errBody{Code: "2214", Error: "Product not activated"}}, outUnauthorized
	case "2220":
		return answer{status: http.StatusForbidden,
			body: errBody{Code: "2220", Error: "Production not enabled"}}, outUnauthorized
	case "2205":
		return answer{status: http.StatusUnauthorized,
			body: errBody{Code: "2205", Error: "Unauthorized"}}, outUnauthorized
	}

	dropAfter := false
	switch s.roll() {
	case outThrottled:
		return answer{status: http.StatusTooManyRequests,
			body: errBody{Error: "Too many requests"}}, outThrottled
	case outFailed:
		return answer{status: http.StatusInternalServerError,
			body: errBody{Code: "2201", Error: "System Error"}}, outFailed
	case outDroppedBefore:
		return answer{drop: true}, outDroppedBefore
	case outDroppedAfter:
		dropAfter = true
	}

	if photoText != "" {
		return reject(http.StatusBadRequest, "2213", photoText)
	}

	s.mu.Lock()
	already := s.enrolled[req.UserID] > 0
	if !already {
		s.enrolled[req.UserID]++
		s.photos[req.UserID] = info
	}
	s.mu.Unlock()
	if already {
		return answer{status: http.StatusBadRequest,
			body: errBody{Code: "2209", Error: "User already enrolled"}}, outAlready
	}
	if dropAfter {
		return answer{drop: true}, outDroppedAfter
	}
	return answer{status: http.StatusOK, body: s.success(req.UserID, req.UserCreatedAt)}, outEnrolled
}

// actions is the documented Actions object of a backfill success, in the
// documented order.
type actions struct {
	LivenessCheck                   string `json:"Liveness_Check"`
	RegisterSelfie                  string `json:"Register_Selfie"`
	VerifyDocument                  string `json:"Verify_Document"`
	HumanReviewCompare              string `json:"Human_Review_Compare"`
	ReturnPersonalInfo              string `json:"Return_Personal_Info"`
	SelfieToIDCardCompare           string `json:"Selfie_To_ID_Card_Compare"`
	HumanReviewUpdateSelfie         string `json:"Human_Review_Update_Selfie"`
	HumanReviewLivenessCheck        string `json:"Human_Review_Liveness_Check"`
	SelfieToIDAuthorityCompare      string `json:"Selfie_To_ID_Authority_Compare"`
	UpdateRegisteredSelfieOnFile    string `json:"Update_Registered_Selfie_On_File"`
	SelfieToRegisteredSelfieCompare string `json:"Selfie_To_Registered_Selfie_Compare"`
}

type partnerParams struct {
	JobID         string `json:"job_id"`
	JobType       int    `json:"job_type"`
	UserID        string `json:"user_id"`
	UserCreatedAt string `json:"user_created_at"`
}

type success struct {
	Actions         actions       `json:"Actions"`
	ConfidenceValue string        `json:"ConfidenceValue"`
	PartnerParams   partnerParams `json:"PartnerParams"`
	ResultCode      string        `json:"ResultCode"`
	ResultText      string        `json:"ResultText"`
	SmileJobID      string        `json:"SmileJobID"`
	Source          string        `json:"Source"`
	Timestamp       string        `json:"timestamp"`
	Signature       string        `json:"signature"`
}

const na = "Not Applicable"

var enrollActions = actions{
	LivenessCheck: na, RegisterSelfie: "Approved", VerifyDocument: na,
	HumanReviewCompare: na, ReturnPersonalInfo: na, SelfieToIDCardCompare: na,
	HumanReviewUpdateSelfie: na, HumanReviewLivenessCheck: na,
	SelfieToIDAuthorityCompare: na, UpdateRegisteredSelfieOnFile: na,
	SelfieToRegisteredSelfieCompare: na,
}

// success builds the signed answer to an enrollment.
func (s *Server) success(userID, createdAt string) *success {
	n := s.jobSeq.Add(1)
	ts := signature.Timestamp(s.now())
	return &success{
		Actions:         enrollActions,
		ConfidenceValue: "100",
		PartnerParams: partnerParams{
			JobID:         fmt.Sprintf("sandbox-%08x-%d", s.jobTag, n),
			JobType:       4,
			UserID:        userID,
			UserCreatedAt: createdAt,
		},
		ResultCode: "0840",
		ResultText: "Enroll User",
		SmileJobID: strconv.FormatUint(s.jobBase+n, 10),
		Source:     "BackfillUsers",
		Timestamp:  ts,
		Signature:  signature.Sign(s.opts.APIKey, s.opts.PartnerID, ts),
	}
}
