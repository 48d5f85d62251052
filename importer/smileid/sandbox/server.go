package sandbox

// The server: the Server type, its routing, answer signing and writing,
// and Run, which serves it on a TCP address.

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bulkenroll/importer/smileid/signature"

	"golang.org/x/time/rate"
)

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

	routes     map[string]route      // by path; built by New
	auth       authLedger            // authentication jobs; guarded by mu
	authDice   *rand.Rand            // the --auth-reject-rate die; guarded by mu
	knobs      atomic.Pointer[knobs] // latency and fault rates; replaced by the control route
	jitterMu   sync.Mutex
	jitterDice *rand.Rand
	cmp        compareState // SmartSelfie Compare's ledger (compare.go)
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
	if err := checkAuthOptions(opts); err != nil {
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
	s.authDice = rand.New(rand.NewPCG(uint64(seed), 0x61757468))
	s.auth = newAuthLedger(opts.AuthRejectUsers)
	s.routes = s.newRoutes()
	s.setQuota(s.now(), opts.Quota, opts.QuotaBurst)
	// Job IDs need only be unique, not reproducible: draw their base from the
	// process-wide source so that two emulator runs do not repeat them.
	s.jobBase = 1_000_000_000 + rand.Uint64N(7_000_000_000)
	s.jobTag = rand.Uint32()
	return s, nil
}

// route is what one path takes: its methods (the first is the one
// advertised in Allow when there is one) and its handler.
type route struct {
	methods []string
	handle  http.HandlerFunc
}

// newRoutes maps each path the emulator serves to its route. The zip
// uploads, under UploadURLPrefix, are routed by prefix in ServeHTTP.
func (s *Server) newRoutes() map[string]route {
	post := []string{http.MethodPost}
	return map[string]route{
		BackfillPath:  {post, s.backfill},
		UploadPath:    {post, s.prepareUpload},
		JobStatusPath: {post, s.jobStatus},
		StatePath:     {[]string{http.MethodGet, http.MethodHead}, s.serveState},
		ControlPath:   {post, s.control},
		ComparePath:   {post, s.serveCompare},
	}
}

// ServeHTTP routes each path of the emulated API (backfill, the three
// steps of SmartSelfie Authentication, SmartSelfie Compare) and the emulator's own routes
// (GET /sandbox/state; POST /sandbox/control, loopback clients only).
// Another method on a known path gets HTTP 405, an unknown path HTTP 404,
// both with a JSON body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.routes[r.URL.Path]
	if !ok && strings.HasPrefix(r.URL.Path, UploadURLPrefix) {
		rt, ok = route{[]string{http.MethodPut}, s.putZip}, true
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody{Error: "Not found"})
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errBody{Error: "Method not allowed"})
		return
	}
	rt.handle(w, r)
}

// serveState answers GET /sandbox/state.
func (s *Server) serveState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

// errBody is the API's error shape. Code is omitted where the API sends none.
type errBody struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error"`
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

// rejection is the answer of a refused request: status with the API's
// error body.
func rejection(status int, code, text string) *answer {
	return &answer{status: status, body: errBody{Code: code, Error: text}}
}

// answer is what the handler decided for one request.
type answer struct {
	status int
	body   any
	drop   bool   // close the connection instead of answering
	retry  string // Retry-After of a 429; empty: the configured one
}

// reply answers a after the latency (nothing, if the client gives up
// first): by closing the connection, or with a's status and body, and a
// Retry-After on a 429.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, a answer) {
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
	if a.body == nil {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(a.status)
		return
	}
	writeJSON(w, a.status, a.body)
}
