package sandbox

// The ledger of SmartSelfie Authentication (job type 2): the jobs handed
// out, their uploads, and how each ends, with the counters GET
// /sandbox/state reports.

import (
	"fmt"
	"strings"
	"time"
)

// Outcomes of an authentication job, as AuthJob.Outcome and the
// AuthStats counters name them.
const (
	// JobAwaitingUpload: prepared, no zip received yet.
	JobAwaitingUpload = "awaiting_upload"
	// JobProcessing: the zip arrived less than Options.AuthDelay ago.
	JobProcessing = "processing"
	// JobAuthenticated: complete, job_success true (ResultCode 1220).
	JobAuthenticated = "authenticated"
	// JobNotAuthenticated: complete, job_success false (a rejected
	// selfie, or a user never enrolled).
	JobNotAuthenticated = "not_authenticated"
	// JobInvalid: complete, job_success false because the zip could not
	// be used (corrupt zip, bad info.json, no usable selfie).
	JobInvalid = "invalid"
)

// AuthJob is the emulator's record of one authentication job, as GET
// /sandbox/state reports it under its job_id.
type AuthJob struct {
	// UserID is the job's partner_params.user_id.
	UserID string `json:"user_id"`
	// SmileJobID is the number the emulator gave the job.
	SmileJobID string `json:"smile_job_id"`
	// Uploads counts the zips received in full for the job (PUTs to its
	// upload URL answered 200): a client that uploads once has 1.
	Uploads int `json:"uploads"`
	// Prepares counts the 2202 answers for the job (1, plus one for each
	// prepare request with the retry flag).
	Prepares int `json:"prepares"`
	// Outcome is one of the Job* constants, at the time of the state.
	Outcome string `json:"outcome"`
	// ResultCode is the job's result code once it is complete.
	ResultCode string `json:"result_code,omitempty"`
	// Selfie describes the selfie of the first usable zip.
	Selfie *PhotoInfo `json:"selfie,omitempty"`
	// Liveness is the number of liveness frames info.json listed.
	Liveness int `json:"liveness"`
	// Problem says why the zip could not be used (JobInvalid).
	Problem string `json:"problem,omitempty"`
}

// AuthStats counts what the emulator did on the routes of SmartSelfie
// Authentication, and its jobs by outcome.
type AuthStats struct {
	// Prepares is the number of POST /v1/upload requests received.
	Prepares int `json:"prepares"`
	// Prepared counts the jobs created (answered 2202); Retried the
	// prepare requests with the retry flag for a job already prepared,
	// answered with its upload URL again.
	Prepared int `json:"prepared"`
	Retried  int `json:"retried"`
	// Duplicates counts the 2215 answers (job_id used before).
	Duplicates int `json:"duplicates"`
	// NotEnrolled counts the 2210 answers of /v1/upload.
	NotEnrolled int `json:"not_enrolled"`
	// Rejected counts prepare requests refused for their content (2203,
	// 2204, 2212, 2213).
	Rejected int `json:"rejected"`
	// Unauthorized counts 2205 answers and Options.Refuse refusals on
	// both signed routes.
	Unauthorized int `json:"unauthorized"`
	// Throttled, Failed, QuotaRefused and Dropped count the injected
	// faults on /v1/upload (429, 500, the quota's 429, closed connections).
	Throttled    int `json:"throttled"`
	Failed       int `json:"failed"`
	QuotaRefused int `json:"quota_refused"`
	Dropped      int `json:"dropped"`
	// Uploads counts the zips received in full; UploadsRefused the PUTs
	// refused (unknown upload URL, bad signature or Content-Type, too
	// large, cut short).
	Uploads        int `json:"uploads"`
	UploadsRefused int `json:"uploads_refused"`
	// StatusRequests counts POST /v1/job_status requests; StatusUnknown
	// those for a job the emulator never handed out (HTTP 404).
	StatusRequests int `json:"status_requests"`
	StatusUnknown  int `json:"status_unknown"`
	// Jobs counts the jobs by outcome (the Job* constants).
	Jobs map[string]int `json:"jobs"`
}

// authJob is a job as the emulator keeps it.
type authJob struct {
	userID, jobID, smileJobID, refID string
	enrolled                         bool      // the user was enrolled when the job was prepared
	uploads, prepares                int       // zips received in full; 2202 answers
	uploadedAt                       time.Time // the first zip's arrival; zero: none yet
	result                           *authResult
	selfie                           *PhotoInfo
	liveness                         int
	problem                          string
}

// authLedger holds the jobs, by job_id and by ref_id, and the counters.
type authLedger struct {
	jobs        map[string]*authJob
	refs        map[string]*authJob
	rejectUsers map[string]bool
	stats       AuthStats
}

func newAuthLedger(rejectUsers []string) authLedger {
	l := authLedger{jobs: make(map[string]*authJob), refs: make(map[string]*authJob),
		rejectUsers: make(map[string]bool)}
	for _, u := range rejectUsers {
		if u = strings.TrimSpace(u); u != "" {
			l.rejectUsers[u] = true
		}
	}
	return l
}

// checkAuthOptions checks the options of SmartSelfie Authentication.
func checkAuthOptions(o Options) error {
	switch {
	case o.AuthDelay < 0:
		return fmt.Errorf("sandbox: auth delay %s is negative", o.AuthDelay)
	case !(o.AuthRejectRate >= 0 && o.AuthRejectRate <= 1):
		return fmt.Errorf("sandbox: auth reject rate %v is outside [0, 1]", o.AuthRejectRate)
	}
	switch o.AuthUnknownUser {
	case "", "upload", "job":
	default:
		return fmt.Errorf("sandbox: auth unknown-user answer %q is not upload or job", o.AuthUnknownUser)
	}
	return nil
}

// outcomeAt is the job's outcome at now. The caller holds mu.
func (s *Server) outcomeAt(j *authJob, now time.Time) string {
	switch {
	case j.uploadedAt.IsZero():
		return JobAwaitingUpload
	case now.Before(j.uploadedAt.Add(s.opts.AuthDelay)):
		return JobProcessing
	case j.problem != "":
		return JobInvalid
	case j.result.success:
		return JobAuthenticated
	}
	return JobNotAuthenticated
}

// AuthJobs returns the authentication jobs by job_id, as they stand now.
func (s *Server) AuthJobs() map[string]AuthJob {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]AuthJob, len(s.auth.jobs))
	for id, j := range s.auth.jobs {
		out[id] = s.authJobAt(j, now)
	}
	return out
}

// authJobAt is j's public record at now. The caller holds mu.
func (s *Server) authJobAt(j *authJob, now time.Time) AuthJob {
	a := AuthJob{UserID: j.userID, SmileJobID: j.smileJobID, Uploads: j.uploads, Prepares: j.prepares,
		Outcome: s.outcomeAt(j, now), Liveness: j.liveness, Problem: j.problem}
	if a.Outcome != JobAwaitingUpload && a.Outcome != JobProcessing {
		a.ResultCode = j.result.code
	}
	if j.selfie != nil {
		p := *j.selfie
		a.Selfie = &p
	}
	return a
}

// AuthStats returns the counters of the authentication routes, with the
// jobs counted by their outcome now.
func (s *Server) AuthStats() AuthStats {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.auth.stats
	st.Jobs = map[string]int{JobAwaitingUpload: 0, JobProcessing: 0, JobAuthenticated: 0,
		JobNotAuthenticated: 0, JobInvalid: 0}
	for _, j := range s.auth.jobs {
		st.Jobs[s.outcomeAt(j, now)]++
	}
	return st
}

// countAuth changes the authentication counters under mu.
func (s *Server) countAuth(f func(*AuthStats)) {
	s.mu.Lock()
	f(&s.auth.stats)
	s.mu.Unlock()
}
