package smileid

import "errors"

// Answer classes the importer counts: what each request sent got back.
const (
	AnswerEnrolled        = "enrolled"         // a verified 0840
	AnswerAlreadyEnrolled = "already_enrolled" // 2209
	AnswerRefused         = "refused"          // a permanent refusal with Smile ID's code (compare: 0841, 0941, 2215 too)
	AnswerAccount         = "account"          // 2205, 2214, 2220: the run stops
	AnswerThrottled       = "throttled"        // HTTP 429
	AnswerServerError     = "server_error"     // 5xx or 2201 (compare: 2210 too)
	AnswerNotSmileID      = "not_smile_id"     // an answer without Smile ID's code (a proxy's page): the run stops
	AnswerTransport       = "transport"        // no answer: time-out, refused or dropped connection
	AnswerUnverified      = "unverified"       // a 200 that could not be believed (unsigned, forged)
)

// AnswerClasses lists every answer class, in the order displays show them.
var AnswerClasses = []string{AnswerEnrolled, AnswerAlreadyEnrolled, AnswerRefused, AnswerAccount,
	AnswerThrottled, AnswerServerError, AnswerNotSmileID, AnswerTransport, AnswerUnverified}

// AnswerClass names the class of answer that err (nil: a verified success)
// is, one of AnswerClasses.
func AnswerClass(err error) string {
	var ae *APIError
	if err == nil {
		return AnswerEnrolled
	}
	if !errors.As(err, &ae) {
		return AnswerTransport
	}
	cls := Classify(err)
	switch cls {
	case AlreadyEnrolled:
		return AnswerAlreadyEnrolled
	case Permanent, JobExists:
		return AnswerRefused
	case Account:
		return AnswerAccount
	case Foreign:
		return AnswerNotSmileID
	}
	switch {
	case ae.Status == 429:
		return AnswerThrottled
	case ae.Status >= 500 || ae.Code == "2201" || (cls == Transient && ae.Code != "" && ae.Reason == ""):
		return AnswerServerError
	}
	return AnswerUnverified
}
