package sandbox

// The ledger: what the emulator did, counted in Stats, and what it holds
// (enrolled users, their photos), served on GET /sandbox/state.

import (
	"maps"
	"slices"
	"time"
)

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
	// Auth counts what the routes of SmartSelfie Authentication did, and
	// their jobs by outcome.
	Auth AuthStats `json:"auth"`
	// AuthJobs are the authentication jobs by job_id, each with its
	// uploads and outcome.
	AuthJobs map[string]AuthJob `json:"auth_jobs"`
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

// Enrolled returns a copy of the enrollment record: each enrolled user_id
// mapped to the number of times it was enrolled (never more than one).
func (s *Server) Enrolled() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.enrolled)
}

// Photos returns a copy of the photo ledger: each enrolled user_id mapped to
// the photo its enrollment received.
func (s *Server) Photos() map[string]PhotoInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.photos)
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

// State returns the emulator's record, as GET /sandbox/state serves it.
func (s *Server) State() State {
	return State{Enrolled: s.Enrolled(), Photos: s.Photos(), Stats: s.Stats(), Settings: s.Settings(),
		Auth: s.AuthStats(), AuthJobs: s.AuthJobs(), DownSeconds: s.DownSeconds(), Compare: s.CompareJobs()}
}
