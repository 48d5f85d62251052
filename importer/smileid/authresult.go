package smileid

import (
	"fmt"
	"strings"
)

// AuthOutcome is what a SmartSelfie Authentication job says of a user.
type AuthOutcome string

// The outcomes of an authentication job.
const (
	Authenticated    AuthOutcome = "authenticated"
	NotAuthenticated AuthOutcome = "not authenticated"
	PendingReview    AuthOutcome = "pending review"
	AuthError        AuthOutcome = "error"
)

// AuthCode is one known result code of job type 2.
type AuthCode struct {
	// Outcome is what the code means.
	Outcome AuthOutcome
	// Source says where the meaning comes from.
	Source string
}

// AuthCodes are the result codes of job type 2 whose meaning is known.
// The full table is not public (see smileid-protocol.md §2): only 1220 is
// documented as approved, 0824 as provisional; a code not here is decided
// from job_success, the Selfie_To_Registered_Selfie_Compare action and the
// result text (DecideAuth).
var AuthCodes = map[string]AuthCode{
	"1220": {Authenticated, "documented: Authenticated (SmartSelfie Authentication docs)"},
	"0824": {PendingReview, "documented: Provisional Authentication - Under Review"},
	"0903": {NotAuthenticated, "documented: Zip Corrupt (rejected)"},
	"0907": {NotAuthenticated, "documented: possible spoof, strict setting (rejected)"},
	"0001": {NotAuthenticated, "documented: data invalid, selfie unusable"},
	"2210": {NotAuthenticated, "documented: no enrolled user found"},
	"2216": {NotAuthenticated, "documented: the enrolled user has no photo on file"},
}

// CompareAction is the action that compares the selfie with the photo on file.
const CompareAction = "Selfie_To_Registered_Selfie_Compare"

// Action values that pass, fail, or wait for a review.
var (
	passedActions  = []string{"Passed", "Completed", "Approved", "Verified"}
	failedActions  = []string{"Failed", "Rejected", "Not Verified"}
	pendingActions = []string{"Under Review", "Sent to Human Review", "Provisionally Approved", "Pending"}
)

// DecideAuth says what a complete job's status means for the user, and
// why. An incomplete job is PendingReview (its result is not in yet).
func DecideAuth(js *JobStatus) (AuthOutcome, string) {
	if js == nil {
		return AuthError, "no job status"
	}
	if !js.JobComplete {
		msg := js.ResultMessage
		if msg == "" {
			msg = "the job is not complete yet"
		}
		return PendingReview, msg
	}
	r := js.Result
	if r == nil {
		if js.JobSuccess {
			return AuthError, fmt.Sprintf("a complete job without a result object (%q)", js.ResultMessage)
		}
		return NotAuthenticated, nonEmpty(js.ResultMessage, "the job did not succeed")
	}
	text := fmt.Sprintf("%s %s", r.ResultCode, r.ResultText)
	if c, ok := AuthCodes[r.ResultCode]; ok {
		return c.Outcome, text
	}
	compare := r.Actions[CompareAction]
	switch {
	case strings.EqualFold(string(r.IsFinalResult), "false"), hasAny(r.ResultText, "Provisional", "Under Review", "Pending"),
		isOneOf(compare, pendingActions), isOneOf(r.Actions["Liveness_Check"], pendingActions):
		return PendingReview, text
	case !js.JobSuccess:
		return NotAuthenticated, text
	case isOneOf(compare, failedActions), hasAny(r.ResultText, "Fail", "Spoof", "Reject", "No Match"):
		return NotAuthenticated, text
	case isOneOf(compare, passedActions):
		return Authenticated, text
	}
	return AuthError, fmt.Sprintf("%s: job_success true but %s is %q: not decided", text, CompareAction, compare)
}

func isOneOf(v string, set []string) bool {
	for _, s := range set {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func hasAny(s string, subs ...string) bool {
	ls := strings.ToLower(s)
	for _, sub := range subs {
		if strings.Contains(ls, strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
