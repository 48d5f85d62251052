package ratelimit

import "time"

// history counts, in binWidth bins over the last histSpan, the requests
// sent, the answers, and what the limit allowed.
type history struct {
	bins [histBins]histBin
	upTo time.Time // allowed is accounted up to here
}

type histBin struct {
	start    time.Time
	sent, ok int
	allowed  float64
}

const (
	binWidth = 100 * time.Millisecond
	histBins = 50
	histSpan = histBins * binWidth
)

// bin returns the bin of time t, clearing it if it held an older period.
func (h *history) bin(t time.Time) *histBin {
	i, start := ringSlot(t, binWidth, histBins)
	b := &h.bins[i]
	if !b.start.Equal(start) {
		*b = histBin{start: start}
	}
	return b
}

// sum adds up the bins from the one holding now-span (or since, if later)
// to now, and returns the time they cover: from the start of the first, or
// since, to now.
func (h *history) sum(now, since time.Time, span time.Duration) (ok, sent int, allowed float64, covered time.Duration) {
	if span <= 0 {
		return
	}
	from := later(now.Add(-span), since).Truncate(binWidth)
	for i := range h.bins {
		b := &h.bins[i]
		if b.start.IsZero() || b.start.Before(from) || b.start.After(now) {
			continue
		}
		ok += b.ok
		sent += b.sent
		allowed += b.allowed
	}
	return ok, sent, allowed, now.Sub(later(from, since))
}

// ringSlot returns the index of time t's bin in a ring of n bins of
// width, and the time that bin starts.
func ringSlot(t time.Time, width time.Duration, n int64) (int64, time.Time) {
	k := t.UnixNano() / int64(width)
	return k % n, time.Unix(0, k*int64(width))
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
