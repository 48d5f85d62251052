package importer

import "time"

// episodes finds 429 episodes: a share of throttled answers above
// episodeShare over a window of several answer times. Only the answers to
// requests sent after the last cut count (the caller leaves the others
// out), so 429s still coming back for requests sent at the old rate do not
// start a new episode. The window is long enough to hold episodeAnswers
// answers, so that sparse 429s at random (noise) stay below the threshold.
// The rate of the answers that were not 429 over the same window is the
// quota measured. The caller of every method holds the gate's mutex.
type episodes struct {
	bins [epBins]epBin
	cuts uint64 // episodes so far

	// rates are the quotas the last episodes measured, newest last.
	rates []float64
}

type epBin struct {
	start         time.Time
	ok, throttled int
}

const (
	episodeShare      = 0.10 // a share of 429s above this over the window is an episode
	episodeAnswers    = 100  // the window holds at least this many answers
	episodeThrottled  = 5    // and at least this many 429s
	episodeRTTs       = 4    // and spans at least this many answer times
	episodeMinSpan    = time.Second
	epBinWidth        = 250 * time.Millisecond
	epBins            = 128  // 32s: the longest window
	sustainedEpisodes = 3    // a quota is sustained after this many episodes
	sustainedSpread   = 1.25 // whose rates are within this ratio of each other
)

// bin returns the bin of time t, clearing it if it held an older period.
func (e *episodes) bin(t time.Time) *epBin {
	n := t.UnixNano() / int64(epBinWidth)
	b := &e.bins[n%epBins]
	start := time.Unix(0, n*int64(epBinWidth))
	if !b.start.Equal(start) {
		*b = epBin{start: start}
	}
	return b
}

// answer counts an answer at now to a request sent since the last cut.
func (e *episodes) answer(now time.Time, throttled bool) {
	b := e.bin(now)
	if throttled {
		b.throttled++
	} else {
		b.ok++
	}
}

// detect reports whether the answers up to now make an episode, and the
// rate of answers that were not 429 over the window, the quota measured.
// rtt is the recent answer time; resumed is when sending resumed after the
// last pause (the rate is measured from then at the earliest).
func (e *episodes) detect(now time.Time, rtt time.Duration, resumed time.Time) (rate float64, ok bool) {
	need := max(episodeMinSpan, episodeRTTs*rtt)
	cur := now.UnixNano() / int64(epBinWidth)
	var good, thr int
	var from time.Time
	for i := range int64(epBins) {
		n := cur - i
		b := &e.bins[n%epBins]
		start := time.Unix(0, n*int64(epBinWidth))
		if !b.start.Equal(start) {
			continue // empty, or cleared by the cut
		}
		good += b.ok
		thr += b.throttled
		from = start
		if good+thr >= episodeAnswers && now.Sub(from) >= need {
			break
		}
	}
	all := good + thr
	if all < episodeAnswers || thr < episodeThrottled || float64(thr) <= episodeShare*float64(all) {
		return 0, false
	}
	span := now.Sub(later(from, resumed)).Seconds()
	if span <= 0 {
		return 0, false
	}
	return float64(good) / span, true
}

// cutAt starts a new episode at now that measured rate: answers to
// requests sent before it no longer count.
func (e *episodes) cutAt(_ time.Time, rate float64) {
	e.cuts++
	e.bins = [epBins]epBin{}
	e.rates = append(e.rates, rate)
	if len(e.rates) > sustainedEpisodes {
		e.rates = e.rates[len(e.rates)-sustainedEpisodes:]
	}
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
