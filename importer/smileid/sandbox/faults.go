package sandbox

// Faults: the dice that pick a random fault for a request, and closing a
// connection without an answer.

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

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

// checkOutageOptions checks the options of outages, jitter and ThrottleFirst.
func checkOutageOptions(o Options) error {
	switch {
	case o.LatencyJitter < 0:
		return fmt.Errorf("sandbox: latency jitter %s is negative", o.LatencyJitter)
	case o.DownAfter < 0:
		return fmt.Errorf("sandbox: down-after %s is negative", o.DownAfter)
	case o.DownFor < 0:
		return fmt.Errorf("sandbox: down-for %s is negative", o.DownFor)
	case o.ThrottleFirst < 0:
		return fmt.Errorf("sandbox: throttle-first %d is negative", o.ThrottleFirst)
	}
	switch o.DownAnswer {
	case "", "reset", "503":
	default:
		return fmt.Errorf("sandbox: down answer %q is not reset or 503", o.DownAnswer)
	}
	return nil
}

// isDown reports whether an outage is going on at now. The caller holds mu.
func (s *Server) isDown(now time.Time) bool {
	return !s.downFrom.IsZero() && !now.Before(s.downFrom) && now.Before(s.downUntil)
}

// countDownSecond counts a request that arrived at now, during the outage
// that began at downFrom, in DownSeconds. The caller holds mu.
func (s *Server) countDownSecond(now time.Time) {
	if !s.secondsOf.Equal(s.downFrom) {
		s.secondsOf, s.downSeconds = s.downFrom, s.downSeconds[:0]
	}
	i := int(now.Sub(s.downFrom) / time.Second)
	if i >= 86400 {
		return
	}
	for len(s.downSeconds) <= i {
		s.downSeconds = append(s.downSeconds, 0)
	}
	s.downSeconds[i]++
}

// answerDown answers a request during an outage: a reset connection, or a
// load balancer's 503 page.
func (s *Server) answerDown(w http.ResponseWriter) {
	if s.opts.DownAnswer != "503" {
		dropConn(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"))
}

// delay is how long the answer to one request waits: the latency plus a
// uniform draw from [0, jitter).
func (s *Server) delay() time.Duration {
	k := s.knobs.Load()
	d := k.latency
	if k.jitter > 0 {
		s.jitterMu.Lock()
		d += time.Duration(s.jitterDice.Int64N(int64(k.jitter)))
		s.jitterMu.Unlock()
	}
	return d
}

// throttleFirst reports whether an authorised request for user is one of
// its first Options.ThrottleFirst, to be answered 429, and counts it.
func (s *Server) throttleFirst(user string) bool {
	if s.opts.ThrottleFirst <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tries[user] >= s.opts.ThrottleFirst {
		return false
	}
	s.tries[user]++
	return true
}
