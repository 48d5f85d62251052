// Package sandbox is a local emulator of Smile ID's job type 4 endpoint,
// POST /v1/backfill_users, for rehearsing bulk imports offline and for testing
// the client against a server that behaves like the real one.
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

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of the ledger's photos
	_ "image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/time/rate"

	"bulkenroll/importer/smileid/signature"
)

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
	// CompareRejectRate is the fraction of users whose SmartSelfie Compare
	// answers 0841 No Match (drawn from a hash of the user_id, so the same
	// users whatever the order); CompareRejectUsers lists users that always
	// get 0841. Outside [0, 1] is an error in New.
	CompareRejectRate  float64
	CompareRejectUsers []string
}

// Stats counts what the emulator did on its API route. Each POST request is
// counted in Requests and in exactly one of Enrolled, AlreadyEnrolled,
// Rejected, Failed, Throttled, QuotaRefused, DroppedBefore or Unauthorized. DroppedAfter
// counts the enrollments, already in Enrolled, whose answer was then withheld
// by closing the connection. Requests with another method are not counted.
// During an outage a request is counted in Requests and Down only.
type Stats struct {
	// Requests is the number of POST requests received on the API route.
	Requests int `json:"requests"`
	// Enrolled is the number of enrollments made, answered or not.
	Enrolled int `json:"enrolled"`
	// AlreadyEnrolled is the number of 2209 answers.
	AlreadyEnrolled int `json:"already_enrolled"`
	// Rejected is the number of requests refused for their content:
	// codes 2203, 2204, 2213 and 2413.
	Rejected int `json:"rejected"`
	// Failed is the number of injected HTTP 500 answers.
	Failed int `json:"failed"`
	// Throttled is the number of injected HTTP 429 answers.
	Throttled int `json:"throttled"`
	// DroppedBefore is the number of connections closed before enrolling.
	DroppedBefore int `json:"dropped_before"`
	// DroppedAfter is the number of connections closed after enrolling.
	DroppedAfter int `json:"dropped_after"`
	// Unauthorized is the number of account-level refusals: bad partner,
	// signature or timestamp (2205), and the answers forced by
	// Options.Refuse.
	Unauthorized int `json:"unauthorized"`
	// MaxPerSecond is the largest number of requests that arrived within
	// any one-second sliding window.
	MaxPerSecond int `json:"max_per_second"`
	// MaxPer5Seconds is the largest number of requests that arrived within
	// any five-second sliding window: a rate over a span that a loaded
	// machine's clustered arrivals cannot push far over a limit.
	MaxPer5Seconds int `json:"max_per_5_seconds"`
	// QuotaRefused is the number of authorised requests refused with HTTP
	// 429 for going over Options.Quota.
	QuotaRefused int `json:"quota_refused"`
	// MaxAcceptedPerSecond is the largest number of authorised requests
	// let through the quota check within any one-second sliding window.
	MaxAcceptedPerSecond int `json:"max_accepted_per_second"`
	// Down is the number of requests that arrived during an outage and
	// were answered with a reset or a 503 page.
	Down int `json:"down"`
	// MaxDownPerSecond is the largest number of requests that arrived
	// during outages within any one-second sliding window: how hard a
	// client knocks on a service that does not answer.
	MaxDownPerSecond int `json:"max_down_per_second"`
	// MaxInFlight is the largest number of requests on the API route
	// being handled at once (received and not yet answered, the latency
	// included): the client's concurrency as the server sees it.
	MaxInFlight int `json:"max_in_flight"`
}

// State is the JSON document served on StatePath.
type State struct {
	// Stats is a copy of the emulator's counters.
	Stats Stats `json:"stats"`
	// Enrolled maps each enrolled user_id to the number of times it was
	// enrolled, which is never more than one.
	Enrolled map[string]int `json:"enrolled"`
	// Photos maps each enrolled user_id to what is known of the photo its
	// enrollment received.
	Photos map[string]PhotoInfo `json:"photos"`
	// Settings are the settings in force, which the control route changes.
	Settings Settings `json:"settings"`
	// DownSeconds is Server.DownSeconds: the latest outage's requests by
	// the second of the outage they arrived in.
	DownSeconds []int `json:"down_seconds,omitempty"`
	// Compare is the SmartSelfie Compare ledger (Server.CompareJobs).
	Compare []CompareJob `json:"compare,omitempty"`
}

// PhotoInfo describes a photo the emulator accepted, read from its decoded
// bytes with image.DecodeConfig only (the pixels are never decoded).
type PhotoInfo struct {
	// Format is "jpeg" or "png", from the file's magic bytes.
	Format string `json:"format"`
	// Bytes is the size of the decoded photo file.
	Bytes int64 `json:"bytes"`
	// Width and Height are the image's dimensions; both zero when the
	// header could not be read.
	Width  int `json:"width"`
	Height int `json:"height"`
	// ConfigError is why image.DecodeConfig failed, if it did.
	ConfigError string `json:"config_error,omitempty"`
}

// Server emulates POST /v1/backfill_users. It implements http.Handler and is
// safe for concurrent use. Create it with New.
type Server struct {
	opts        Options
	maxPhoto    int64
	maxBody     int64
	retryHdr    string
	now         func() time.Time
	jobBase     uint64
	jobTag      uint32
	jobSeq      atomic.Uint64
	diceMu      sync.Mutex
	dice        *rand.Rand
	jsonOnly    bool       // tests: skip parseFast, to compare it with encoding/json
	mu          sync.Mutex // guards everything below
	enrolled    map[string]int
	photos      map[string]PhotoInfo
	stats       Stats
	arrivals    slidingWindow // every request, over a second
	arrivals5   slidingWindow // every request, over five seconds
	quota       *rate.Limiter // nil: no quota; guarded by mu
	quotaRate   float64       // the quota's rate (0: none); guarded by mu
	accepted    slidingWindow // requests that passed the quota
	downWin     slidingWindow // requests that arrived during an outage
	downFrom    time.Time     // the outage's span [downFrom, downUntil); guarded by mu
	downUntil   time.Time
	secondsOf   time.Time // the outage downSeconds counts; guarded by mu
	downSeconds []int
	inFlight    int            // requests being handled; guarded by mu
	tries       map[string]int // authorised requests per user, for ThrottleFirst; guarded by mu

	knobs      atomic.Pointer[knobs] // latency and fault rates; replaced by the control route
	jitterMu   sync.Mutex
	jitterDice *rand.Rand

	cmp compareState // SmartSelfie Compare's ledger (compare.go)
}

// New checks opts and returns a Server. It fails if PartnerID or APIKey is
// empty, if a rate is outside [0, 1] or the rates sum to more than 1, if
// Refuse is not one of "", "2214", "2220" or "2205", if MaxPhotoBytes,
// the quota, LatencyJitter, DownAfter, DownFor or ThrottleFirst is negative,
// or if DownAnswer is not "", "reset" or "503".
func New(opts Options) (*Server, error) {
	if opts.PartnerID == "" {
		return nil, errors.New("sandbox: partner ID is required")
	}
	if opts.APIKey == "" {
		return nil, errors.New("sandbox: API key is required")
	}
	rates := []struct {
		name string
		v    float64
	}{
		{"fail rate", opts.FailRate},
		{"throttle rate", opts.ThrottleRate},
		{"drop-before rate", opts.DropBeforeRate},
		{"drop-after rate", opts.DropAfterRate},
	}
	sum := 0.0
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also catches NaN
			return nil, fmt.Errorf("sandbox: %s %v is outside [0, 1]", r.name, r.v)
		}
		sum += r.v
	}
	if sum > 1+1e-9 {
		return nil, fmt.Errorf("sandbox: fault rates sum to %v, more than 1", sum)
	}
	switch opts.Refuse {
	case "", "2214", "2220", "2205":
	default:
		return nil, fmt.Errorf("sandbox: refusal code %q is not one of 2214, 2220, 2205", opts.Refuse)
	}
	if opts.MaxPhotoBytes < 0 {
		return nil, fmt.Errorf("sandbox: photo size limit %d is negative", opts.MaxPhotoBytes)
	}
	if !(opts.Quota >= 0) || math.IsInf(opts.Quota, 0) {
		return nil, fmt.Errorf("sandbox: quota %v is not a rate of zero or more per second", opts.Quota)
	}
	if !(opts.CompareRejectRate >= 0 && opts.CompareRejectRate <= 1) {
		return nil, fmt.Errorf("sandbox: compare reject rate %v is outside [0, 1]", opts.CompareRejectRate)
	}
	if opts.QuotaBurst < 0 {
		return nil, fmt.Errorf("sandbox: quota burst %d is negative", opts.QuotaBurst)
	}
	if err := checkOutageOptions(opts); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, now: opts.Now, enrolled: make(map[string]int), photos: make(map[string]PhotoInfo),
		tries: make(map[string]int), arrivals5: slidingWindow{span: 5 * time.Second}}
	if s.now == nil {
		s.now = time.Now
	}
	s.knobs.Store(&knobs{latency: opts.Latency, jitter: opts.LatencyJitter,
		failRate: opts.FailRate, throttleRate: opts.ThrottleRate})
	if opts.DownFor > 0 {
		s.downFrom = s.now().Add(opts.DownAfter)
		s.downUntil = s.downFrom.Add(opts.DownFor)
	}
	s.maxPhoto = opts.MaxPhotoBytes
	if s.maxPhoto == 0 {
		s.maxPhoto = DefaultMaxPhotoBytes
	}
	// The body holds the photo in base64 plus a few short fields; allow at
	// least 8 MiB so the real API's documented limit always fits.
	s.maxBody = max(8<<20, int64(base64.StdEncoding.EncodedLen(int(min(s.maxPhoto, 1<<40))))) + 64<<10
	ra := opts.RetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	s.retryHdr = retryAfterHeader(ra)
	seed := opts.Seed
	if seed == 0 {
		seed = defaultSeed
	}
	s.dice = rand.New(rand.NewPCG(uint64(seed), 0x62756c6b656e726f))
	s.jitterDice = rand.New(rand.NewPCG(uint64(seed), 0x6a6974746572))
	s.setQuota(s.now(), opts.Quota, opts.QuotaBurst)
	// Job IDs need only be unique, not reproducible: draw their base from the
	// process-wide source so that two emulator runs do not repeat them.
	s.jobBase = 1_000_000_000 + rand.Uint64N(7_000_000_000)
	s.jobTag = rand.Uint32()
	return s, nil
}

// Enrolled returns a copy of the enrollment record: each enrolled user_id
// mapped to the number of times it was enrolled (never more than one).
func (s *Server) Enrolled() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.enrolled))
	for k, v := range s.enrolled {
		out[k] = v
	}
	return out
}

// Photos returns a copy of the photo ledger: each enrolled user_id mapped to
// the photo its enrollment received.
func (s *Server) Photos() map[string]PhotoInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]PhotoInfo, len(s.photos))
	for k, v := range s.photos {
		out[k] = v
	}
	return out
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// DownSeconds counts the requests of the latest outage by the second of
// the outage they arrived in (index 0: its first second), so that a test
// can tell a client's first seconds of retries from its probing later on.
// At most a day of seconds is kept.
func (s *Server) DownSeconds() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.downSeconds)
}

// ServeHTTP routes POST /v1/backfill_users and POST /v2/smart-selfie-compare
// to the emulated API,
// GET /sandbox/state to the emulator's record and POST /sandbox/control to
// its settings (loopback clients only). Other methods on those paths
// get HTTP 405, other paths HTTP 404, both with a JSON body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case BackfillPath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errBody{Error: "Method not allowed"})
			return
		}
		s.backfill(w, r)
	case ComparePath:
		s.serveCompare(w, r)
	case StatePath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errBody{Error: "Method not allowed"})
			return
		}
		st := State{Enrolled: s.Enrolled(), Photos: s.Photos(), Stats: s.Stats(), Settings: s.Settings(),
			DownSeconds: s.DownSeconds(), Compare: s.CompareJobs()}
		writeJSON(w, http.StatusOK, st)
	case ControlPath:
		s.control(w, r)
	default:
		writeJSON(w, http.StatusNotFound, errBody{Error: "Not found"})
	}
}

// errBody is the API's error shape. Code is omitted where the API sends none.
type errBody struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error"`
}

// parseFast reads the common form of a backfill body without encoding/json:
// one JSON object whose keys are exactly the six field names and whose values
// are strings of printable ASCII without escapes. encoding/json would read
// such a body to the same values, but in three passes over the photo; this
// reads it in one and returns the photo as a slice of body, valid as long as
// body is. Any other input, valid JSON or not, makes ok false, and the caller
// must then use encoding/json.
func parseFast(b []byte) (req request, photo []byte, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return req, nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return req, nil, skipSpace(b, i+1) == len(b)
	}
	for {
		key, next, ok := plainString(b, i, false)
		if !ok {
			return req, nil, false
		}
		i = skipSpace(b, next)
		if i == len(b) || b[i] != ':' {
			return req, nil, false
		}
		val, next, ok := plainString(b, skipSpace(b, i+1), string(key) == "photo")
		if !ok {
			return req, nil, false
		}
		switch string(key) { // no allocation: the compiler compares in place
		case "partner_id":
			req.PartnerID = string(val)
		case "timestamp":
			req.Timestamp = string(val)
		case "signature":
			req.Signature = string(val)
		case "user_id":
			req.UserID = string(val)
		case "user_created_at":
			req.UserCreatedAt = string(val)
		case "photo":
			photo = val
		default:
			return req, nil, false
		}
		i = skipSpace(b, next)
		if i == len(b) {
			return req, nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return req, photo, skipSpace(b, i+1) == len(b)
		default:
			return req, nil, false
		}
	}
}

// plainString reads the JSON string starting at b[i] if it holds only
// printable ASCII and no escapes, returning its contents and the index after
// its closing quote. With long set (for the photo) it only rules out escapes
// and raw line breaks, using fast searches; the caller must then rule out
// other control characters, which base64 decoding does as a side effect (see
// hasControl).
func plainString(b []byte, i int, long bool) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	s = b[i+1 : i+1+end]
	if long {
		if bytes.IndexByte(s, '\\') >= 0 || bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
			return nil, 0, false
		}
	} else {
		for _, c := range s {
			if c < 0x20 || c >= 0x7f || c == '\\' {
				return nil, 0, false
			}
		}
	}
	return s, i + 2 + end, true
}

// hasControl reports whether b holds a byte JSON forbids unescaped in a string.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// request holds the fields of a backfill body. Strings let encoding/json
// report a wrong type as *json.UnmarshalTypeError naming the field.
type request struct {
	PartnerID     string `json:"partner_id"`
	Timestamp     string `json:"timestamp"`
	Signature     string `json:"signature"`
	UserID        string `json:"user_id"`
	UserCreatedAt string `json:"user_created_at"`
	Photo         string `json:"photo"`
}

// answer is what the handler decided for one request.
type answer struct {
	status int
	body   any
	drop   bool   // close the connection instead of answering
	retry  string // Retry-After of a 429; empty: the configured one
}

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

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var photoPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (s *Server) backfill(w http.ResponseWriter, r *http.Request) {
	down := s.arrive()
	defer s.leave()
	if down {
		s.answerDown(w)
		return
	}
	a, out := s.decide(w, r)
	s.count(out)
	if d := s.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if a.drop {
		dropConn(w)
		return
	}
	if a.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", cmp.Or(a.retry, s.retryHdr))
	}
	writeJSON(w, a.status, a.body)
}

// decide runs the checks of one request in the API's order and, if it gets
// that far, enrolls the user.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) (answer, outcome) {
	reject := func(status int, code, text string) (answer, outcome) {
		return answer{status: status, body: errBody{Code: code, Error: text}}, outRejected
	}

	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 16<<20 {
			bufPool.Put(buf)
		}
	}()
	if n := r.ContentLength; n > 0 && n <= s.maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reject(http.StatusRequestEntityTooLarge, "2213",
				fmt.Sprintf("Request body larger than %d bytes", s.maxBody))
		}
		return reject(http.StatusBadRequest, "2203", "Invalid JSON: could not read the request body")
	}
	body := buf.Bytes()

	// The photo is inspected as soon as it is parsed, although its verdict
	// is only given after the checks that come first: the fast path needs
	// it to be sure the body was valid JSON.
	var photoText string
	var info PhotoInfo
	var (
		req   request
		photo []byte
		ok    bool
	)
	if !s.jsonOnly {
		req, photo, ok = parseFast(body)
	}
	if ok && len(photo) > 0 {
		photoText, info = s.checkPhoto(photo)
		if photoText == textNotBase64 && hasControl(photo) {
			ok = false // invalid JSON: let encoding/json say so
		}
	}
	if !ok {
		// Anything the fast path is unsure of goes through encoding/json,
		// whose verdict is authoritative.
		req = request{}
		if first := firstNonSpace(body); first != '{' {
			return reject(http.StatusBadRequest, "2203", "Invalid JSON: the body must be a JSON object")
		}
		if err := json.Unmarshal(body, &req); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				field := typeErr.Field
				if field == "" {
					field = "body"
				}
				return reject(http.StatusBadRequest, "2204",
					fmt.Sprintf("Invalid data type: %s must be a string", field))
			}
			return reject(http.StatusBadRequest, "2203", "Invalid JSON")
		}
		// checkPhoto only reads photo, so view the string's bytes in place
		// rather than copying a photo-sized string.
		photo = unsafe.Slice(unsafe.StringData(req.Photo), len(req.Photo))
		if len(photo) > 0 {
			photoText, info = s.checkPhoto(photo)
		}
	}

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

// authorised reports whether the partner ID is the configured one, the
// timestamp is in signature.TimestampLayout, and the signature is valid.
func (s *Server) authorised(partnerID, ts, sig string) bool {
	if partnerID != s.opts.PartnerID {
		return false
	}
	t, err := time.Parse(signature.TimestampLayout, ts)
	if err != nil || t.Format(signature.TimestampLayout) != ts {
		return false
	}
	return signature.Verify(s.opts.APIKey, partnerID, ts, sig)
}

// roll draws the one fault die of a request: outThrottled, outFailed,
// outDroppedBefore, outDroppedAfter, or outEnrolled for no fault.
func (s *Server) roll() outcome {
	k := s.knobs.Load()
	o := Options{ThrottleRate: k.throttleRate, FailRate: k.failRate,
		DropBeforeRate: s.opts.DropBeforeRate, DropAfterRate: s.opts.DropAfterRate}
	s.diceMu.Lock()
	u := s.dice.Float64()
	s.diceMu.Unlock()
	// A rate of 1 must always fire and a rate of 0 never, whatever u is.
	switch {
	case o.ThrottleRate > 0 && u < o.ThrottleRate:
		return outThrottled
	case o.FailRate > 0 && u < o.ThrottleRate+o.FailRate:
		return outFailed
	case o.DropBeforeRate > 0 && u < o.ThrottleRate+o.FailRate+o.DropBeforeRate:
		return outDroppedBefore
	case o.DropAfterRate > 0 && u < o.ThrottleRate+o.FailRate+o.DropBeforeRate+o.DropAfterRate:
		return outDroppedAfter
	}
	return outEnrolled
}

// checkPhoto returns why photo is unacceptable, or "" if it is a JPEG or PNG
// file in standard base64 within the size limit; for an acceptable photo it
// also describes it for the ledger.
func (s *Server) checkPhoto(photo []byte) (string, PhotoInfo) {
	if len(photo) >= 5 && bytes.EqualFold(photo[:5], []byte("data:")) {
		return "photo must be base64 without a data URI prefix", PhotoInfo{}
	}
	bp := photoPool.Get().(*[]byte)
	defer photoPool.Put(bp)
	need := base64.StdEncoding.DecodedLen(len(photo))
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	dst := (*bp)[:need]
	n, err := base64.StdEncoding.Decode(dst, photo)
	if err != nil {
		return textNotBase64, PhotoInfo{}
	}
	if int64(n) > s.maxPhoto {
		return s.tooLarge(), PhotoInfo{}
	}
	dst = dst[:n]
	info := PhotoInfo{Bytes: int64(n)}
	switch {
	case bytes.HasPrefix(dst, jpegMagic):
		info.Format = "jpeg"
	case bytes.HasPrefix(dst, pngMagic):
		info.Format = "png"
	default:
		return "photo must be a JPEG or PNG image", PhotoInfo{}
	}
	// The header only: cheap whatever the photo's size.
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(dst)); err != nil {
		info.ConfigError = err.Error()
	} else {
		info.Width, info.Height = cfg.Width, cfg.Height
	}
	return "", info
}

const textNotBase64 = "photo is not valid standard base64"

func (s *Server) tooLarge() string {
	return fmt.Sprintf("photo is larger than the limit of %d bytes", s.maxPhoto)
}

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A}
)

// arrive records a request's arrival in the one-second window and updates
// Stats.Requests, Stats.MaxPerSecond and Stats.MaxInFlight; during an
// outage it also counts the request in Stats.Down and returns true. Every
// arrive is followed by one leave.
func (s *Server) arrive() (down bool) {
	t := s.now()
	now := t.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
	if down = s.isDown(t); down {
		s.stats.Down++
		s.stats.MaxDownPerSecond = max(s.stats.MaxDownPerSecond, s.downWin.add(now))
		s.countDownSecond(t)
	}
	s.stats.MaxPerSecond = max(s.stats.MaxPerSecond, s.arrivals.add(now))
	s.stats.MaxPer5Seconds = max(s.stats.MaxPer5Seconds, s.arrivals5.add(now))
	return down
}

// leave ends what arrive began: the request has been answered.
func (s *Server) leave() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

// admit takes a token of the quota for an authorised request, recording it
// in the accepted window, or returns the time until the next token.
func (s *Server) admit() (wait time.Duration, ok bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quota == nil {
		return 0, true
	}
	if s.quota.AllowN(now, 1) {
		if n := s.accepted.add(now.UnixNano()); n > s.stats.MaxAcceptedPerSecond {
			s.stats.MaxAcceptedPerSecond = n
		}
		return 0, true
	}
	missing := 1 - s.quota.TokensAt(now)
	return time.Duration(missing / s.quotaRate * float64(time.Second)), false
}

// slidingWindow holds the times (UnixNano) of the events of the last span
// (a second when span is zero).
type slidingWindow struct {
	span  time.Duration
	times []int64
	head  int
}

// add records an event at now and returns how many fell within the span up
// to now. Each time is moved O(1) times on average, and the slice never
// holds more than twice the busiest span.
func (w *slidingWindow) add(now int64) int {
	span := w.span
	if span <= 0 {
		span = time.Second
	}
	cut := now - int64(span)
	w.times = append(w.times, now)
	for w.head < len(w.times) && w.times[w.head] <= cut {
		w.head++
	}
	n := len(w.times) - w.head
	if w.head > 0 && w.head*2 >= len(w.times) {
		k := copy(w.times, w.times[w.head:])
		w.times = w.times[:k]
		w.head = 0
	}
	return n
}

func (s *Server) count(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch o {
	case outEnrolled:
		s.stats.Enrolled++
	case outAlready:
		s.stats.AlreadyEnrolled++
	case outRejected:
		s.stats.Rejected++
	case outFailed:
		s.stats.Failed++
	case outThrottled:
		s.stats.Throttled++
	case outDroppedBefore:
		s.stats.DroppedBefore++
	case outDroppedAfter:
		s.stats.Enrolled++
		s.stats.DroppedAfter++
	case outUnauthorized:
		s.stats.Unauthorized++
	case outQuota:
		s.stats.QuotaRefused++
	}
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

func firstNonSpace(b []byte) byte {
	if i := skipSpace(b, 0); i < len(b) {
		return b[i]
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"2201","error":"System Error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// dropConn closes the client's connection without answering. Over HTTP/1 it
// hijacks and closes the connection; where hijacking is impossible (HTTP/2,
// httptest.ResponseRecorder) it aborts the handler with http.ErrAbortHandler,
// which the net/http server turns into a reset without an answer.
func dropConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // reset rather than a clean FIN, like a crash
			}
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// Run serves a Server built from opts on addr (for example
// "127.0.0.1:8080"; port 0 picks a free port), prints one line
// "sandbox listening on http://HOST:PORT" with the base URL to out, and serves
// until ctx is cancelled. It then shuts down gracefully, waiting at most about
// five seconds for requests in flight before closing what is left, and
// returns nil. It returns an error if opts are invalid, addr cannot be
// listened on, or serving fails.
func Run(ctx context.Context, addr string, opts Options, out io.Writer) error {
	s, err := New(opts)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if _, err := fmt.Fprintf(out, "sandbox listening on %s\n", baseURL(ln.Addr())); err != nil {
		ln.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sandbox: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// baseURL is the URL a local client should use for a listener's address; an
// unspecified host (":8080", "0.0.0.0:8080") is shown as loopback.
func baseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
