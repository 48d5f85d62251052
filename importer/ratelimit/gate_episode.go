package ratelimit

import (
	"math"
	"time"
)

// episodes finds 429 episodes: a share of throttled answers above
// episodeShare over a window of several answer times. Only the answers to
// requests sent after the last cut count (the caller leaves the others
// out), so 429s still coming back for requests sent at the old rate do not
// start a new episode. The share must be above the threshold with
// confidence, so that sparse 429s at random (noise) never make one.
// The rate of the answers that were not 429 over the same window is the
// quota measured. The caller of every method holds the gate's mutex.
type episodes struct {
	bins [epBins]epBin
	cuts uint64 // episodes so far

	since time.Time // when counting began: the start, or the last cut
	// sentAt is the lowest rate limit in force when a request answered 429
	// since then was sent (0: none, or no limit).
	sentAt float64

	// rates are the quotas the last episodes measured, newest last.
	rates []float64

	// below counts the answers, and the 429s among them,
	// to requests sent well below the learned quota: their 429s are noise,
	// and an episode is a share of 429s above it.
	below tally

	// under counts the same for the requests sent at
	// the learned quota or under it: what a probe above it is compared to.
	under tally

	// near counts the same for the requests sent just under the learned
	// quota, above noiseBelow of it (since it was last learned): more 429s
	// there than below says the quota learned is a little high.
	near tally

	// steppedAt is when probes last stepped the limit back: neither the
	// answers counted before it nor those still coming to probes sent
	// before it, at the old limit (the gate leaves them out), count, so
	// that they do not step it back again.
	steppedAt time.Time
}

type epBin struct {
	start         time.Time
	first         time.Time // the first answer in the bin
	ok, throttled int
	// aboveOK and aboveThrottled count the answers, and the 429s, to
	// requests sent above the learned quota (probes).
	aboveOK, aboveThrottled int
	// aboveOKRate adds up the rate limits at which the probes answered
	// without a 429 were sent.
	aboveOKRate float64
}

const (
	episodeShare      = 0.10  // before a quota is learned, a share of 429s above this is an episode
	episodeMargin     = 0.03  // after, a share above the noise by this much
	noiseSamples      = 2000  // the noise share counts about this many answers
	noiseKnown        = 50    // and is known after this many
	softThrottled     = 2     // probes stop growing after this many 429s
	softZ             = 2.0   // with this confidence, in standard deviations
	softMargin        = 0.005 // at a share above the noise by this much
	episodeZ          = 2.0   // the confidence of that share, in standard deviations
	episodeThrottled  = 3     // the window holds at least this many 429s
	pathologicalShare = 0.75  // answers below this share of the 429s' sending limit: a bucket of one
	episodeRTTs       = 1     // and spans at least this many answer times
	episodeMinSpan    = 2 * time.Second
	epBinWidth        = 250 * time.Millisecond
	epBins            = 128  // 32s: the longest window
	sustainedEpisodes = 3    // a quota is sustained after this many episodes
	sustainedSpread   = 1.25 // whose rates are within this ratio of each other
	stableSpread      = 1.1  // two episodes this close found a stable quota
)

// bin returns the bin of time t, clearing it if it held an older period.
func (e *episodes) bin(t time.Time) *epBin {
	i, start := ringSlot(t, epBinWidth, epBins)
	b := &e.bins[i]
	if !b.start.Equal(start) {
		*b = epBin{start: start}
	}
	return b
}

// tally counts answers (n) and the 429s among them (k), and adds up the
// rates at which the others were sent (okRate), halving all three past
// noiseSamples so that it follows a noise that changes.
type tally struct{ n, k, okRate float64 }

// add counts one answer to a request sent at a limit of sentAt, a 429 if
// throttled.
func (t *tally) add(throttled bool, sentAt float64) {
	t.n++
	if throttled {
		t.k++
	} else {
		t.okRate += sentAt
	}
	if t.n > noiseSamples {
		t.n, t.k, t.okRate = t.n/2, t.k/2, t.okRate/2
	}
}

// band is where a request was sent against the learned quota, by the
// rate limit in force when it went.
type band int

// The bands.
const (
	bandNone  band = iota // no learned quota or no limit, or a probe sent before the last step back
	bandBelow             // well below the quota (noiseBelow of it at most): its 429s are noise
	bandNear              // just under it, above noiseBelow of it
	bandAbove             // above it: a probe
)

// answer counts an answer at now to a request sent since the last cut,
// at a limit of sentAt requests a second (0: none), in band where.
func (e *episodes) answer(now time.Time, throttled bool, sentAt float64, where band) {
	switch where {
	case bandBelow:
		e.below.add(throttled, sentAt)
		e.under.add(throttled, sentAt)
	case bandNear:
		e.near.add(throttled, sentAt)
		e.under.add(throttled, sentAt)
	}
	b := e.bin(now)
	if b.first.IsZero() {
		b.first = now
	}
	if where == bandAbove {
		if throttled {
			b.aboveThrottled++
		} else {
			b.aboveOK++
			b.aboveOKRate += sentAt
		}
	}
	if throttled {
		b.throttled++
		if where != bandBelow && sentAt > 0 && (e.sentAt == 0 || sentAt < e.sentAt) {
			e.sentAt = sentAt
		}
	} else {
		b.ok++
	}
}

// detect reports whether the answers up to now make an episode, and the
// quota measured: the rate of answers that were not 429 over its window;
// but if that is well below the lowest rate limit at which a request that
// met a 429 since the last cut was sent, that limit (a quota's bucket of one
// request refuses every other request as soon as the rate passes it, so
// the answers alone would say half the quota).
// It looks back over windows of at least episodeRTTs answer times (rtt is
// the recent answer time), from the shortest up: an episode is a window
// whose share of 429s is above episodeShare with confidence (the lower
// bound of its Wilson score interval), so that a steep share is found
// within a few answer times, a slight one over a longer window, and sparse
// 429s at random (noise) never. resumed is when sending resumed after the
// last pause: the rate is measured from then at the earliest.
func (e *episodes) detect(now time.Time, rtt time.Duration, resumed time.Time) (rate float64, ok bool) {
	// The window is not longer than the time since counting began (the
	// start, or the last cut), so that a run throttled from its first
	// requests finds its episode at once.
	full := max(episodeMinSpan, episodeRTTs*rtt)
	need := min(full, now.Sub(e.since))
	cur := now.UnixNano() / int64(epBinWidth)
	var good, thr int
	sentAt := e.sentAt
	var first time.Time // the first answer of the window
	for i := range int64(epBins) {
		n := cur - i
		start := time.Unix(0, n*int64(epBinWidth))
		if b := &e.bins[n%epBins]; b.start.Equal(start) {
			good += b.ok
			thr += b.throttled
			first = b.first
		}
		// The window must span need, unless it covers all the time
		// counted already.
		covered := !start.After(e.since)
		if (now.Sub(start) < need && !covered) || thr < episodeThrottled {
			if covered {
				break
			}
			continue
		}
		if wilsonLow(thr, good+thr) > e.threshold() {
			// A window shorter than need (early in the run, or right
			// after a cut) would count the server's burst as rate: the
			// rate is measured over need at least (and the 429s' sending
			// limit then corrects an estimate too low).
			span := max(now.Sub(later(first, resumed)), full).Seconds()
			if episodeTrace != nil {
				episodeTrace(good, thr, span)
			}
			rate := float64(good) / span
			if rate < pathologicalShare*sentAt {
				rate = sentAt
			}
			return rate, true
		}
		if covered {
			break
		}
	}
	return 0, false
}

var episodeTrace func(good, thr int, span float64)

// probing returns the share of 429s among the answers of the last span to
// requests sent above the learned quota (probes), above the share among
// those sent at it or under it, if above softMargin and that share itself,
// with confidence (0 otherwise): the quota is about there. Noise refuses
// at any rate, a quota only above it. accepted is the rate the service
// accepted of the probes.
func (e *episodes) probing(now time.Time, span time.Duration) (excess, accepted float64) {
	var ok, thr int
	var okRate float64
	from := now.Add(-span)
	for i := range int64(epBins) {
		t := now.Add(-time.Duration(i) * epBinWidth)
		if t.Before(from.Add(-epBinWidth)) || t.Before(e.since) {
			break
		}
		if b := e.binAt(t); b != nil {
			if b.start.Before(e.steppedAt) {
				break
			}
			ok += b.aboveOK
			thr += b.aboveThrottled
			okRate += b.aboveOKRate
		}
	}
	if thr < softThrottled || e.under.n < noiseKnown {
		// Until the noise is known, a 429 to a probe may be noise.
		return 0, 0
	}
	// Above the noise by softMargin, and with confidence (excessShare). The
	// requests sent under the learned quota are the reference, or
	// those sent well below it if they met fewer 429s: a quota learned
	// a little high refuses some of the first.
	n0, t0 := e.under.n, e.under.k
	if e.below.n >= noiseKnown && e.below.k/e.below.n < t0/n0 {
		n0, t0 = e.below.n, e.below.k
	}
	n1 := float64(ok + thr)
	x := excessShare(float64(thr), n1, t0, n0)
	if x == 0 {
		return 0, 0
	}
	// Of requests sent above a quota at rate r, it accepts its rate: the
	// mean over the probes of their sending rate if accepted, 0 if not.
	return x, okRate / n1
}

// excessShare returns by how much a share of 429s, k1 of n1, is above a
// reference share, k0 of n0: 0 unless by more than softMargin and than the
// reference share itself, and with confidence. Both shares are estimates
// (a two-proportion test, at softZ standard deviations), so that noise
// measured low by chance is not taken for a quota.
func excessShare(k1, n1, k0, n0 float64) float64 {
	p1, p0 := k1/n1, k0/n0
	x := p1 - p0
	pool := (k1 + k0) / (n1 + n0)
	se := math.Sqrt(pool * (1 - pool) * (1/n1 + 1/n0))
	if x <= max(softMargin, p0) || x <= softZ*se {
		return 0
	}
	return x
}

// overLearned reports whether the requests sent just under the learned
// quota meet more 429s than those sent well below it (the noise), and the
// quota they say: the rate at which they were accepted, less the noise.
// A quota learned a little high costs 429s for good otherwise: sending
// just under it is above the quota, and too few 429s for an episode.
func (e *episodes) overLearned() (quota float64, ok bool) {
	if e.near.n < noiseKnown || e.below.n < noiseKnown {
		return 0, false
	}
	if excessShare(e.near.k, e.near.n, e.below.k, e.below.n) == 0 {
		return 0, false
	}
	return e.near.okRate / e.near.n / (1 - e.noise()), true
}

// binAt returns the bin of time t if it holds that period, else nil.
func (e *episodes) binAt(t time.Time) *epBin {
	i, start := ringSlot(t, epBinWidth, epBins)
	if b := &e.bins[i]; b.start.Equal(start) {
		return b
	}
	return nil
}

// noise is the share of 429s among answers to requests sent well below
// the learned quota (0 until known).
func (e *episodes) noise() float64 {
	if e.below.n < noiseKnown {
		return 0
	}
	return e.below.k / e.below.n
}

// noiseHigh is the upper bound of the noise's confidence interval (1 until
// known), so that a noise that a few dozen answers measure low does not
// make episodes of itself.
func (e *episodes) noiseHigh() float64 {
	if e.below.n < noiseKnown {
		return 1
	}
	return wilsonHigh(int(e.below.k), int(e.below.n))
}

// threshold is the share of 429s above which a window is an episode: a
// fixed share until the noise is known (from answers to requests sent well
// below a learned quota), then the noise and a margin.
func (e *episodes) threshold() float64 {
	return min(episodeShare, e.noiseHigh()+episodeMargin)
}

// wilsonLow is the lower bound of the Wilson score interval of k
// successes in n trials, at episodeZ standard deviations (0 for none).
func wilsonLow(k, n int) float64 {
	if n == 0 {
		return 0
	}
	lo, _ := wilson(k, n)
	return lo
}

// wilsonHigh is the upper bound of the same interval (1 for none).
func wilsonHigh(k, n int) float64 {
	if n == 0 {
		return 1
	}
	_, hi := wilson(k, n)
	return hi
}

// wilson returns the Wilson score interval of k successes in n > 0
// trials, at episodeZ standard deviations.
func wilson(k, n int) (lo, hi float64) {
	z := episodeZ
	nf := float64(n)
	p := float64(k) / nf
	c := p + z*z/(2*nf)
	d := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return (c - d) / (1 + z*z/nf), (c + d) / (1 + z*z/nf)
}

// cutAt starts a new episode at now that measured rate: answers to
// requests sent before it no longer count.
func (e *episodes) cutAt(now time.Time, rate float64) {
	e.cuts++
	e.since = now
	e.sentAt = 0
	e.bins = [epBins]epBin{}
	e.rates = append(e.rates, rate)
	e.under = tally{} // they were under another quota
	if len(e.rates) > sustainedEpisodes {
		e.rates = e.rates[len(e.rates)-sustainedEpisodes:]
	}
}

// remeasured replaces the rate of the last episode with a better measure.
func (e *episodes) remeasured(rate float64) {
	if n := len(e.rates); n > 0 {
		e.rates[n-1] = rate
	}
	e.under = tally{} // they were under another quota
}

// stable reports whether the last two episodes measured about the same quota.
func (e *episodes) stable() bool {
	n := len(e.rates)
	if n < 2 {
		return false
	}
	a, b := e.rates[n-2], e.rates[n-1]
	return a > 0 && b > 0 && max(a, b) <= stableSpread*min(a, b)
}

// sustained returns the mean rate of the last episodes if they were
// several at a similar rate, 0 otherwise.
func (e *episodes) sustained() float64 {
	if len(e.rates) < sustainedEpisodes {
		return 0
	}
	lo, hi, sum := e.rates[0], e.rates[0], 0.0
	for _, r := range e.rates {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	if lo <= 0 || hi > sustainedSpread*lo {
		return 0
	}
	return sum / float64(len(e.rates))
}
