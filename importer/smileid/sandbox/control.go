package sandbox

// The settings a rehearsal changes while the emulator serves: latency with
// jitter, fault rates, the quota, and outages, with the control route that
// changes them (POST /sandbox/control, from loopback only).

import (
	"bulkenroll/importer/urlref"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"
)

// knobs are the latency and fault rates in force; the control route
// replaces them as a whole, so a request reads one consistent set.
type knobs struct {
	latency, jitter        time.Duration
	failRate, throttleRate float64
}

// Settings are the emulator's settings in force, as GET /sandbox/state
// reports them and POST /sandbox/control answers.
type Settings struct {
	// Latency and LatencyJitter: each answer waits Latency plus a uniform
	// draw from [0, LatencyJitter).
	Latency       string `json:"latency"`
	LatencyJitter string `json:"latency_jitter"`
	// FailRate and ThrottleRate are the fractions of requests answered
	// 500 and 429 at random.
	FailRate     float64 `json:"fail_rate"`
	ThrottleRate float64 `json:"throttle_rate"`
	// Quota is the quota in requests per second (0: none), QuotaBurst its
	// bucket's size.
	Quota      float64 `json:"quota"`
	QuotaBurst int     `json:"quota_burst"`
	// Down is set while an outage is going on; DownFrom and DownUntil are
	// the span of the current or next outage (absent: none planned).
	Down      bool      `json:"down"`
	DownFrom  time.Time `json:"down_from,omitzero"`
	DownUntil time.Time `json:"down_until,omitzero"`
}

// Control is the body of POST /sandbox/control: each field given changes
// that setting at once, the others stay as they are. Durations are Go
// duration strings ("1.5s", "60s").
type Control struct {
	// Quota sets the quota in requests per second; 0 removes it. The
	// bucket keeps its tokens when the rate changes.
	Quota *float64 `json:"quota,omitempty"`
	// QuotaBurst sets the bucket's size; without it a new Quota gets
	// max(1, Quota/10).
	QuotaBurst *int `json:"quota_burst,omitempty"`
	// DownFor starts an outage now that lasts that long ("0s" ends the
	// outage going on, and cancels one planned).
	DownFor *string `json:"down_for,omitempty"`
	// Latency and LatencyJitter set the answers' delay.
	Latency       *string `json:"latency,omitempty"`
	LatencyJitter *string `json:"latency_jitter,omitempty"`
	// FailRate and ThrottleRate set the random 500s and 429s; with the
	// drop rates they must not sum to more than 1.
	FailRate     *float64 `json:"fail_rate,omitempty"`
	ThrottleRate *float64 `json:"throttle_rate,omitempty"`
}

// Settings returns the settings in force.
func (s *Server) Settings() Settings {
	k := s.knobs.Load()
	st := Settings{Latency: k.latency.String(), LatencyJitter: k.jitter.String(),
		FailRate: k.failRate, ThrottleRate: k.throttleRate}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Quota = s.quotaRate
	if s.quota != nil {
		st.QuotaBurst = s.quota.Burst()
	}
	st.Down = s.isDown(now)
	if now.Before(s.downUntil) {
		st.DownFrom, st.DownUntil = s.downFrom, s.downUntil
	}
	return st
}

// control serves POST /sandbox/control: it applies a Control and answers
// the settings in force. Only loopback clients may use it.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errBody{Error: "Method not allowed"})
		return
	}
	if !fromLoopback(r.RemoteAddr) {
		writeJSON(w, http.StatusForbidden, errBody{Error: "the control route answers loopback clients only"})
		return
	}
	var c Control
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{Error: "control: " + err.Error()})
		return
	}
	if err := s.Apply(c); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Settings())
}

// fromLoopback reports whether a request's remote address is a loopback IP.
func fromLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return net.ParseIP(host) != nil && urlref.IsLoopback(host)
}

// Apply changes the settings c names, all or none: it checks every field
// first and returns an error naming the first bad one.
func (s *Server) Apply(c Control) error {
	k := *s.knobs.Load()
	dur := func(name string, v *string, into *time.Duration) error {
		if v == nil {
			return nil
		}
		d, err := time.ParseDuration(*v)
		if err != nil || d < 0 {
			return fmt.Errorf("control: %s %q is not a duration of zero or more", name, *v)
		}
		*into = d
		return nil
	}
	var downFor time.Duration
	for _, f := range []struct {
		name string
		v    *string
		into *time.Duration
	}{{"latency", c.Latency, &k.latency}, {"latency_jitter", c.LatencyJitter, &k.jitter}, {"down_for", c.DownFor, &downFor}} {
		if err := dur(f.name, f.v, f.into); err != nil {
			return err
		}
	}
	if c.FailRate != nil {
		k.failRate = *c.FailRate
	}
	if c.ThrottleRate != nil {
		k.throttleRate = *c.ThrottleRate
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"fail_rate", k.failRate}, {"throttle_rate", k.throttleRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("control: %s %v is outside [0, 1]", r.name, r.v)
		}
	}
	if k.failRate+k.throttleRate+s.opts.DropBeforeRate+s.opts.DropAfterRate > 1+1e-9 {
		return errors.New("control: the fault rates would sum to more than 1")
	}
	if c.Quota != nil && (!(*c.Quota >= 0) || math.IsInf(*c.Quota, 0)) {
		return fmt.Errorf("control: quota %v is not a rate of zero or more per second", *c.Quota)
	}
	if c.QuotaBurst != nil && *c.QuotaBurst < 1 {
		return fmt.Errorf("control: quota_burst %d is not 1 or more", *c.QuotaBurst)
	}

	now := s.now()
	s.knobs.Store(&k)
	if c.Quota != nil || c.QuotaBurst != nil {
		s.mu.Lock()
		q := s.quotaRate
		s.mu.Unlock()
		if c.Quota != nil {
			q = *c.Quota
		}
		burst := 0
		if c.QuotaBurst != nil {
			burst = *c.QuotaBurst
		}
		s.setQuota(now, q, burst)
	}
	if c.DownFor != nil {
		s.mu.Lock()
		if downFor > 0 {
			s.downFrom, s.downUntil = now, now.Add(downFor)
		} else {
			s.downFrom, s.downUntil = time.Time{}, time.Time{}
		}
		s.mu.Unlock()
	}
	return nil
}
