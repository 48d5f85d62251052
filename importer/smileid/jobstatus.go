package smileid

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// JobStatus is a verified answer of POST /v1/job_status.
type JobStatus struct {
	// JobComplete is false while the job is not processed (or not uploaded).
	JobComplete bool
	// JobSuccess says the job achieved what it was for (for job type 2:
	// the user authenticated).
	JobSuccess bool
	// Code is the answer's own code (e.g. "2302"), when it has one.
	Code string
	// Result is the job's result, nil while the answer's result is a
	// plain string (ResultMessage), such as "No zip uploaded".
	Result *JobResult
	// ResultMessage is the result when it is a string.
	ResultMessage string
}

// JobResult is a job's result object.
type JobResult struct {
	ResultCode    string            `json:"ResultCode"`
	ResultText    string            `json:"ResultText"`
	SmileJobID    string            `json:"SmileJobID"`
	Source        string            `json:"Source"`
	Actions       map[string]string `json:"Actions"`
	PartnerParams struct {
		UserID  string     `json:"user_id"`
		JobID   string     `json:"job_id"`
		JobType flexString `json:"job_type"`
	} `json:"PartnerParams"`
	// ConfidenceValue is sent as a string ("99"), sometimes as a number.
	ConfidenceValue flexString `json:"ConfidenceValue"`
	// IsFinalResult is "true" or "false" when the answer says.
	IsFinalResult flexString `json:"IsFinalResult"`
}

// flexString accepts a JSON string, number or boolean as a string.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*f = ""
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	*f = flexString(b)
	return nil
}

// jobStatusBody is the JSON body of POST /v1/job_status.
type jobStatusBody struct {
	UserID     string `json:"user_id"`
	JobID      string `json:"job_id"`
	PartnerID  string `json:"partner_id"`
	ImageLinks bool   `json:"image_links"`
	History    bool   `json:"history"`
	Timestamp  string `json:"timestamp"`
	Signature  string `json:"signature"`
}

// jobStatusAnswer is the part of a job_status answer the client reads.
type jobStatusAnswer struct {
	Timestamp   string          `json:"timestamp"`
	Signature   string          `json:"signature"`
	JobComplete *bool           `json:"job_complete"`
	JobSuccess  bool            `json:"job_success"`
	Code        json.RawMessage `json:"code"`
	Error       string          `json:"error"`
	Result      json.RawMessage `json:"result"`
}

// JobStatus asks for the state of the job (userID, jobID are the
// partner's), signed, and believes the answer only if its signature
// verifies. The errors are an *APIError (see CannotAuthenticate and
// Classify) or a *TransportError.
func (c *Client) JobStatus(ctx context.Context, userID, jobID string) (*JobStatus, error) {
	ts := signature.Timestamp(c.now())
	body := jobStatusBody{UserID: userID, JobID: jobID, PartnerID: c.cfg.PartnerID, Timestamp: ts,
		Signature: signature.Sign(string(c.cfg.APIKey), c.cfg.PartnerID, ts)}
	resp, data, err := c.postJSON(ctx, "/v1/job_status", body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, data)
	}
	return c.jobStatusAnswer(resp.StatusCode, data, userID, jobID)
}

// jobStatusAnswer reads and verifies a 200 answer of job_status.
func (c *Client) jobStatusAnswer(status int, data []byte, userID, jobID string) (*JobStatus, error) {
	var a jobStatusAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, &APIError{Status: status, Reason: "the job_status answer is not Smile ID JSON", Excerpt: excerpt(data, 120), NotSmileID: true}
	}
	if a.JobComplete == nil {
		if code := codeString(a.Code); code != "" {
			return nil, &APIError{Status: status, Code: code, Text: a.Error}
		}
		return nil, &APIError{Status: status, Reason: "the job_status answer has no job_complete", Excerpt: excerpt(data, 120), NotSmileID: true}
	}
	if a.Signature == "" || a.Timestamp == "" {
		return nil, &APIError{Status: status, Reason: "the job_status answer is not signed; not believed"}
	}
	if !signature.Verify(string(c.cfg.APIKey), c.cfg.PartnerID, a.Timestamp, a.Signature) {
		return nil, &APIError{Status: status, Reason: "the job_status answer's signature does not verify (forged, or another key); not believed"}
	}
	js := &JobStatus{JobComplete: *a.JobComplete, JobSuccess: a.JobSuccess, Code: codeString(a.Code)}
	raw := bytes.TrimSpace(a.Result)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		_ = json.Unmarshal(raw, &js.ResultMessage)
	case raw[0] == '{':
		var r JobResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, &APIError{Status: status, Reason: fmt.Sprintf("the job_status result cannot be read: %v", err), Excerpt: excerpt(raw, 120)}
		}
		if (r.PartnerParams.UserID != "" && r.PartnerParams.UserID != userID) || (r.PartnerParams.JobID != "" && r.PartnerParams.JobID != jobID) {
			return nil, &APIError{Status: status, Reason: fmt.Sprintf("the job_status answer is for user %q job %q, not user %q job %q: a signed answer to another request", r.PartnerParams.UserID, r.PartnerParams.JobID, userID, jobID), NotSmileID: true, WrongUser: true}
		}
		js.Result = &r
	default:
		js.ResultMessage = string(raw)
	}
	return js, nil
}

// Confidence returns the result's confidence value as a number, and
// whether it had one.
func (r *JobResult) Confidence() (float64, bool) {
	if r == nil || r.ConfidenceValue == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(r.ConfidenceValue), 64)
	return f, err == nil
}

// PollDelay is the wait before job_status poll number n (0 is the first,
// sent right after the upload): 2 s after each of the first four
// incomplete answers, then 4 s, as the official SDKs do.
func PollDelay(n int) time.Duration {
	switch {
	case n <= 0:
		return 0
	case n <= 4:
		return 2 * time.Second
	}
	return 4 * time.Second
}
