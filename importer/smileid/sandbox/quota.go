package sandbox

// The quota: a token bucket every authorised request draws from.

import (
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

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

// setQuota sets the quota to q requests per second with a bucket of burst
// (0: max(1, q/10)); q 0 removes it. A new bucket starts full; a bucket
// that exists keeps its tokens. The caller must not hold mu.
func (s *Server) setQuota(now time.Time, q float64, burst int) {
	if burst == 0 {
		burst = max(1, int(q/10))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quotaRate = q
	switch {
	case q <= 0:
		s.quota = nil
	case s.quota == nil:
		s.quota = rate.NewLimiter(rate.Limit(q), burst)
		s.quota.AllowN(now, 0) // start the bucket full at the emulator's clock
	default:
		s.quota.SetLimitAt(now, rate.Limit(q))
		s.quota.SetBurstAt(now, burst)
	}
}

// retryAfterHeader formats a Retry-After of d in whole seconds rounded up,
// at least 1.
func retryAfterHeader(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
