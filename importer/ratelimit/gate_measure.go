package ratelimit

import "time"

// sendLog counts requests by the time they were sent, and their answers by
// the same time, so that once an episode's requests have all been answered
// the quota can be measured by send time, as TCP CUBIC and the AWS SDKs'
// adaptive retry mode measure the rate they sent: requests sent above a
// quota at any rate are accepted at the quota's rate, so the requests
// accepted among those sent from the start of the overshoot to the cut,
// divided by that time, are the quota. The answers are in only seconds
// after the cut when they take seconds; until then the episode's first
// measure (by answer time, over its detection window) stands. The caller
// of every method holds the gate's mutex.
type sendLog struct {
	bins [epBins]sendBin

	// The episode being measured again: its requests were sent from `from`
	// to `to` (the cut), pending are still unanswered, and at deadline the
	// measure is given up if they are not in.
	measuring     bool
	from, to      time.Time
	pending       int
	deadline      time.Time
	gen           uint64  // the episode count of its requests
	learnedBefore float64 // the learned quota before the cut (0: none)
	// refusedAt is the lowest rate limit at which a request of the
	// episode met a 429 (0: unknown).
	refusedAt float64
}

type sendBin struct {
	start time.Time
	// sent counts the requests sent in the bin; accepted those of them the
	// quota let through (answered, 5xx included: the quota comes first),
	// throttled those answered 429.
	sent, accepted, throttled int
}

const (
	minMeasureSpan = time.Second     // the shortest overshoot measured by send time
	measureAnswers = 0.8             // share of an episode's requests that must be answered
	measureWait    = 2               // answer times after the cut to wait for them, at most
	minMeasureWait = 3 * time.Second // and at least
)

// bin returns the bin of send time t, clearing it if it held an older
// period; nil if t is older than the ring.
func (s *sendLog) bin(t time.Time, create bool) *sendBin {
	i, start := ringSlot(t, epBinWidth, epBins)
	b := &s.bins[i]
	if !b.start.Equal(start) {
		if !create {
			return nil
		}
		*b = sendBin{start: start}
	}
	return b
}

// sent counts a request sent at now.
func (s *sendLog) sent(now time.Time) { s.bin(now, true).sent++ }

// answered counts the answer o to a request sent at sent in episode count
// gen. It reports whether the episode being measured has now all its
// answers in (or waited long enough): the caller then calls measure.
func (s *sendLog) answered(now, sent time.Time, gen uint64, o Outcome) (due bool) {
	if b := s.bin(sent, false); b != nil {
		switch o {
		case OK, Down:
			b.accepted++
		case Throttled:
			b.throttled++
		}
	}
	if !s.measuring {
		return false
	}
	if gen == s.gen {
		s.pending--
	}
	return s.pending <= 0 || !now.Before(s.deadline)
}

// due reports whether the measure of the episode has waited long enough.
func (s *sendLog) due(now time.Time) bool { return s.measuring && !now.Before(s.deadline) }

// start begins measuring the episode cut at now, whose requests were sent
// since from and inFlight of which are unanswered, with the episode count
// gen; learned is the quota learned before it (0: none).
func (s *sendLog) start(now, from time.Time, inFlight int, gen uint64, rtt time.Duration, learned, refusedAt float64) {
	from = later(from, now.Add(-epBins*epBinWidth))
	*s = sendLog{bins: s.bins, measuring: true, from: from, to: now, pending: inFlight, gen: gen,
		deadline: now.Add(max(minMeasureWait, measureWait*rtt)), learnedBefore: learned, refusedAt: refusedAt}
}

// measure ends the measure of the episode: the rate of requests accepted
// among those sent from the start of the overshoot to the cut. The start
// of the overshoot is found walking back from the cut a second at a time
// for as long as the share of 429s stays above the noise by episodeShare.
// noise is the share of 429s known to be noise (0: unknown): those were
// accepted by the quota before the noise refused them. ok is false when
// the overshoot was too short or too few answers came back.
func (s *sendLog) measure(noise float64) (quota float64, ok bool) {
	s.measuring = false
	step := int(minMeasureSpan / epBinWidth)
	first := s.from.Truncate(epBinWidth)
	t := s.to.Truncate(epBinWidth) // the bin of the cut: open until then
	var acc, thr, sent int
	var span time.Duration
	for done := false; !done; {
		var a, th, se int
		var sp time.Duration
		for range step {
			if t.Before(first) {
				done = true
				break
			}
			if b := s.bin(t, false); b != nil {
				a, th, se = a+b.accepted, th+b.throttled, se+b.sent
			}
			sp += min(epBinWidth, s.to.Sub(t)) - max(0, s.from.Sub(t))
			t = t.Add(-epBinWidth)
		}
		if measureDebug != nil {
			measureDebug(a, th, se, sp)
		}
		if a+th == 0 || float64(th)/float64(a+th) < noise+episodeShare {
			break
		}
		acc, thr, sent, span = acc+a, thr+th, sent+se, span+sp
	}
	answered := acc + thr
	if span < minMeasureSpan/2 || sent == 0 || float64(answered) < measureAnswers*float64(sent) {
		return 0, false
	}
	// The noise's 429s were accepted by the quota; requests not answered
	// (the row ended otherwise) count at the share of those answered.
	accepted := (float64(acc) + noise*float64(answered)) * float64(sent) / float64(answered)
	return accepted / span.Seconds(), true
}

var measureDebug func(a, th, se int, sp time.Duration)
