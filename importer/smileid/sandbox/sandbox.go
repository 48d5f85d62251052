// Package sandbox is a local emulator of Smile ID's job type 4 endpoint,
// POST /v1/backfill_users, and of SmartSelfie Authentication (job type 2:
// POST /v1/upload, the PUT of a zip to the upload URL it hands out, POST
// /v1/job_status), for rehearsing bulk imports and verifications offline
// and for testing clients (ours, and the official SDKs) against a server
// that behaves like the real one. It knows nothing of manifests, stores or
// the importer: only the API's wire protocol.
//
// The emulator checks bodies and request signatures the way the API does,
// answers with the documented success and error shapes, signs its successful
// answers with the same key, remembers which users it has enrolled (a second
// enrollment of one user gets code 2209), and can inject the faults a real
// import meets: latency, HTTP 500, HTTP 429 throttling, and connections closed
// with no answer either before or after the user was enrolled.
//
// A Server is an http.Handler, so tests can mount it with httptest.NewServer;
// Run serves it on a TCP address for the command line. Besides the API route,
// the emulator (and only the emulator) answers GET /sandbox/state with its own
// record of what it did, for end-to-end tests that run the binary, and
// POST /sandbox/control, from loopback only, to change its quota, latency,
// fault rates or start an outage while it serves (see Control).
package sandbox

import "time"

// Route paths served by the emulator.
const (
	// BackfillPath is the path of the emulated API endpoint.
	BackfillPath = "/v1/backfill_users"
	// StatePath is the emulator-only route that reports Stats and the
	// enrolled users as JSON. The real API has no such route.
	StatePath = "/sandbox/state"
	// ControlPath is the emulator-only route that changes settings while
	// the emulator serves: POST a Control as JSON, from loopback only.
	ControlPath = "/sandbox/control"
	// UploadPath is SmartSelfie Authentication's first step: prepare an
	// upload (POST, signed), answered with an upload URL.
	UploadPath = "/v1/upload"
	// JobStatusPath answers an authentication job's status (POST, signed).
	JobStatusPath = "/v1/job_status"
	// UploadURLPrefix begins the path of every upload URL the emulator
	// hands out (in place of Smile ID's pre-signed storage URLs): the zip
	// of a job is PUT to UploadURLPrefix + ref_id + "/selfie.zip".
	UploadURLPrefix = "/sandbox/uploads/"
)

// DefaultMaxPhotoBytes is the decoded photo size limit used when
// Options.MaxPhotoBytes is zero: 5 MiB.
const DefaultMaxPhotoBytes int64 = 5 << 20

// defaultSeed is the seed of the fault dice when Options.Seed is zero, so that
// runs are reproducible unless a caller asks otherwise.
const defaultSeed int64 = 0x5eed

// Options configures a Server. PartnerID and APIKey are required; every other
// field has a usable zero value.
type Options struct {
	// PartnerID and APIKey are the credentials the emulator accepts. Requests
	// must carry PartnerID and a signature made with APIKey.
	PartnerID, APIKey string
	// Latency delays every answer of the API route (dropped connections
	// included). The outcome is decided, and a user enrolled, when the
	// request arrives; the delay comes after. A client that gives up during
	// the delay gets no answer, but what was done stands, as with a real
	// server that finishes work its client stopped waiting for.
	Latency time.Duration
	// FailRate is the fraction of authorised requests answered HTTP 500
	// {"code":"2201","error":"System Error"} without enrolling anyone.
	FailRate float64
	// ThrottleRate is the fraction of authorised requests answered HTTP 429
	// with a Retry-After header, without enrolling anyone.
	ThrottleRate float64
	// RetryAfter is the delay advertised in the Retry-After header of
	// throttled answers, sent in whole seconds rounded up, at least 1.
	// Zero or negative means one second.
	RetryAfter time.Duration
	// DropBeforeRate is the fraction of authorised requests whose connection
	// is closed with no answer before anything is enrolled.
	DropBeforeRate float64
	// DropAfterRate is the fraction of authorised requests whose connection
	// is closed with no answer after the user was enrolled. A request whose
	// die says so but which is refused anyway (bad photo, user already
	// enrolled) gets its ordinary answer.
	DropAfterRate float64
	// Refuse, if set, is an account-level error code returned (HTTP 403 for
	// 2214 and 2220, HTTP 401 for 2205) to every request whose signature is
	// valid: "2214" product not activated, "2220" production not enabled,
	// "2205" unauthorized. Any other non-empty value is an error in New.
	Refuse string
	// MaxPhotoBytes is the largest decoded photo accepted. Zero means
	// DefaultMaxPhotoBytes; a negative value is an error in New.
	MaxPhotoBytes int64
	// Seed seeds the fault dice; zero means a fixed default seed. Either way
	// the sequence of draws is deterministic, though which request gets which
	// draw depends on arrival order.
	Seed int64
	// Now returns the current time; nil means time.Now. It stamps answers
	// and measures Stats.MaxPerSecond.
	Now func() time.Time
	// Quota, if positive, is a request rate quota per second, enforced
	// with a token bucket on every authorised request before anything else
	// is done with it. Requests above it are answered HTTP 429
	// {"error":"Too Many Requests"} (no Smile ID code: the real API's 429
	// body is not documented) with a Retry-After of the time until the
	// next token, in whole seconds rounded up, at least 1. Negative or
	// non-finite values are an error in New.
	Quota float64
	// QuotaBurst is the bucket's size; zero means max(1, Quota/10).
	// Negative is an error in New.
	QuotaBurst int
	// LatencyJitter adds to Latency a delay drawn uniformly from
	// [0, LatencyJitter) for each request: Latency 1s with LatencyJitter 2s
	// gives answers of 1 to 3 s. Each request waits on its own timer.
	// Negative is an error in New.
	LatencyJitter time.Duration
	// DownAfter and DownFor make an outage: from DownAfter after New, for
	// DownFor, every request on the API route is answered as DownAnswer
	// says, without being read or checked. DownFor zero means no outage
	// (the control route can start one); it happens once. Negative values
	// are an error in New.
	DownAfter, DownFor time.Duration
	// DownAnswer is how a request is answered during an outage: "reset"
	// (the default when empty) closes its connection with a TCP reset,
	// "503" answers HTTP 503 with a load balancer's HTML page (no Smile ID
	// code). Any other value is an error in New.
	DownAnswer string
	// ThrottleFirst, if positive, answers the first ThrottleFirst
	// authorised requests of every user_id (that the quota let through)
	// HTTP 429 with Retry-After, counted in Stats.Throttled: a row
	// throttled that many times before it is enrolled. Negative is an
	// error in New.
	ThrottleFirst int
	// AuthDelay is how long an authentication job stays incomplete
	// (job_complete false) after its zip arrives; zero completes it at
	// once. The command's --auth-delay defaults to 2 s. Negative is an
	// error in New.
	AuthDelay time.Duration
	// AuthRejectRate is the fraction of authentication jobs of enrolled
	// users that complete with job_success false, drawn from a die of
	// their own (seeded by Seed). Outside [0, 1] is an error in New.
	AuthRejectRate float64
	// AuthRejectUsers are user IDs whose authentication jobs always
	// complete with job_success false.
	AuthRejectUsers []string
	// AuthUnknownUser says how a job for a user the emulator never
	// enrolled ends: "" or "upload", POST /v1/upload answers HTTP 400
	// {"code":"2210"}; "job", the job is prepared and completes with
	// job_success false and ResultCode 2210 (the documents do not say
	// which the real API does). Any other value is an error in New.
	AuthUnknownUser string
	// CompareRejectRate is the fraction of users whose SmartSelfie Compare
	// answers 0841 No Match (drawn from a hash of the user_id, so the same
	// users whatever the order); CompareRejectUsers lists users that always
	// get 0841. Outside [0, 1] is an error in New.
	CompareRejectRate  float64
	CompareRejectUsers []string
}
