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
	first     float64 // the quota the episode measured by answer time
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
	remeasureFloor = 0.9             // the measure by send time lowers the first by this share at most
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
func (s *sendLog) start(now, from time.Time, inFlight int, gen uint64, rtt time.Duration, learned, refusedAt, first float64) {
	from = later(from, now.Add(-epBins*epBinWidth))
	*s = sendLog{bins: s.bins, measuring: true, from: from, to: now, pending: inFlight, gen: gen,
		deadline: now.Add(max(minMeasureWait, measureWait*rtt)), learnedBefore: learned, refusedAt: refusedAt, first: first}
}

// measure ends the measure of the episode: the rate of requests accepted
// among those sent from the start of the overshoot to the cut. The start
// of the overshoot is found walking back from the cut a second at a time
// for as long as the share of 429s stays above the noise by episodeShare;
// the measure leaves out the first bin of the overshoot (when there is
// time enough after it), when the quota's bucket still let a burst through.
// noise is the share of 429s known to be noise (0: unknown): those were
// accepted by the quota before the noise refused them. ok is false when
// the overshoot was too short or too few answers came back.
func (s *sendLog) measure(noise float64) (quota float64, ok bool) {
	s.measuring = false
	step := int(minMeasureSpan / epBinWidth)
	from := s.from.Truncate(epBinWidth)
	t := s.to.Truncate(epBinWidth) // the bin of the cut: open until then
	start := t                     // the earliest bin of the overshoot
	for done := false; !done; {
		var a, th int
		u := t
		for range step {
			if u.Before(from) {
				done = true
				break
			}
			if b := s.bin(u, false); b != nil {
				a, th = a+b.accepted, th+b.throttled
			}
			u = u.Add(-epBinWidth)
		}
		if !overshot(a, th, noise) {
			break
		}
		start, t = u.Add(epBinWidth), u
	}
	// The quota's bucket was full when the overshoot began: what it let
	// through at once, on top of its rate, would count as rate. The
	// measure begins after the bin of the first 429, once it is empty.
	for ; start.Before(s.to); start = start.Add(epBinWidth) {
		if b := s.bin(start, false); b != nil && overshot(b.accepted, b.throttled, noise) {
			if s.to.Sub(start) >= minMeasureSpan/2+epBinWidth {
				start = start.Add(epBinWidth)
			}
			break
		}
	}
	var acc, thr, sent int
	for u := start; u.Before(s.to); u = u.Add(epBinWidth) {
		if b := s.bin(u, false); b != nil {
			acc, thr, sent = acc+b.accepted, thr+b.throttled, sent+b.sent
		}
	}
	span := s.to.Sub(later(start, s.from))
	answered := acc + thr
	if span < minMeasureSpan/2 || sent == 0 || float64(answered) < measureAnswers*float64(sent) {
		return 0, false
	}
	// The noise's 429s were accepted by the quota; requests not answered
	// (the row ended otherwise) count at the share of those answered.
	accepted := (float64(acc) + noise*float64(answered)) * float64(sent) / float64(answered)
	return accepted / span.Seconds(), true
}

// overshot reports whether requests of which accepted went through the
// quota and throttled met its 429 were sent above it: the share of 429s
// is above the noise by episodeShare.
func overshot(accepted, throttled int, noise float64) bool {
	return throttled > 0 && float64(throttled)/float64(accepted+throttled) >= noise+episodeShare
}
