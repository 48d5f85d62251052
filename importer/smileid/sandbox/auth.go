package sandbox

// SmartSelfie Authentication (job type 2), what its three steps share:
// the results a job can end with (kept as data), the signed-request
// checks, the tolerant JSON types the SDKs' differences need, and how a
// job's result is decided. prepare.go serves step one (POST /v1/upload),
// zip.go step two (the PUT of the zip), jobstatus.go step three (POST
// /v1/job_status). Written from the official server SDKs' behaviour
// (smileid-protocol.md §1).

import (
	"bytes"
	"encoding/json"
	"net/http"
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
