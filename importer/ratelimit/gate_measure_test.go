package ratelimit

import (
	"math"
	"testing"
	"time"
)

// TestSendLogMeasure: requests sent at a rate above a token-bucket quota
// are accepted at the quota's rate; measured by send time once they are
// answered, the episode finds the quota, whatever the answer times, and
// leaves out the time before the overshoot (sent below the quota).
func TestSendLogMeasure(t *testing.T) {
	for _, c := range []struct {
		name        string
		quota       float64
		below, over float64       // sending rates before and during the overshoot
		belowFor    time.Duration // how long it sent below the quota
		overFor     time.Duration // and then above it, up to the cut
		noise       float64       // share of accepted requests answered 429 anyway (known)
		want        float64       // 0: no measure
	}{
		{"steep overshoot", 30, 20, 45, 5 * time.Second, 3 * time.Second, 0, 30},
		{"slight overshoot", 200, 150, 240, 4 * time.Second, 2 * time.Second, 0, 200},
		{"overshoot from the start", 50, 0, 80, 0, 4 * time.Second, 0, 50},
		{"noise known", 30, 20, 45, 5 * time.Second, 3 * time.Second, 0.05, 30},
		{"no overshoot: sparse 429s", 30, 20, 25, 5 * time.Second, 3 * time.Second, 0.05, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var s sendLog
			type req struct {
				sent time.Time
				o    Outcome
			}
			var reqs []req
			// A token bucket as the sandbox's: a burst of a tenth of a
			// second's worth.
			burst := max(1, math.Floor(c.quota/10))
			tokens, last := burst, time.Duration(0)
			noiseDebt := 0.0
			send := func(at time.Duration) {
				now := start.Add(at)
				s.sent(now)
				tokens = min(burst, tokens+(at-last).Seconds()*c.quota)
				last = at
				o := Throttled
				if tokens >= 1 {
					tokens--
					o = OK
					if noiseDebt += c.noise; noiseDebt >= 1 {
						noiseDebt--
						o = Throttled // the noise after the quota let it through
					}
				}
				reqs = append(reqs, req{now, o})
			}
			at := time.Duration(0)
			if c.below > 0 {
				for ; at < c.belowFor; at += time.Duration(float64(time.Second) / c.below) {
					send(at)
				}
			}
			for end := c.belowFor + c.overFor; at < end; at += time.Duration(float64(time.Second) / c.over) {
				send(at)
			}
			cut := start.Add(c.belowFor + c.overFor)
			s.start(cut, start, len(reqs), 0, 2*time.Second, 0, 0, 0)
			due := false
			for i, r := range reqs {
				// Answers come back over seconds, in any order of sending.
				when := cut.Add(time.Duration(i%7) * 300 * time.Millisecond)
				due = s.answered(when, r.sent, 0, r.o)
			}
			if !due {
				t.Fatal("every request of the episode answered, and the measure is not due")
			}
			got, ok := s.measure(c.noise)
			if c.want == 0 {
				if ok {
					t.Errorf("measured %.1f/s with no overshoot", got)
				}
				return
			}
			if !ok {
				t.Fatal("no measure")
			}
			if math.Abs(got-c.want) > 0.08*c.want {
				t.Errorf("measured %.1f/s, want %.0f/s within 8 %%", got, c.want)
			}
			if s.measuring {
				t.Error("still measuring after measure")
			}
		})
	}
}

// TestEpisodesProbing: answers to probes (requests sent above the learned
// quota) that meet more 429s than those sent under it say the quota is
// about there, with what it accepted of them; the same share of 429s
// under the quota (noise) says nothing, nor do too few answers under it.
func TestEpisodesProbing(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name                 string
		under, underRefused  int // answers under the quota, and 429s among them
		probes, probeRefused int // answers to probes at probeRate, and 429s
		probeRate            float64
		want                 bool
	}{
		{"probes past the quota", 400, 0, 200, 12, 32, true},
		{"noise under and over alike", 400, 20, 200, 10, 32, false},
		{"a stray 429", 400, 0, 200, 1, 32, false},
		{"noise not known yet", 20, 0, 200, 12, 32, false},
		{"noise, and the quota above it", 400, 8, 200, 24, 32, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e episodes
			e.since = start
			now := start.Add(time.Second)
			for i := range c.under {
				e.answer(now, i < c.underRefused, 30, bandNear)
			}
			for i := range c.probes {
				e.answer(now.Add(time.Duration(i)*time.Millisecond), i < c.probeRefused, c.probeRate, bandAbove)
			}
			x, accepted := e.probing(now.Add(time.Second), 2*time.Second)
			if got := x > 0; got != c.want {
				t.Fatalf("probing says %v (excess %.3f), want %v", got, x, c.want)
			}
			if !c.want {
				return
			}
			want := c.probeRate * float64(c.probes-c.probeRefused) / float64(c.probes)
			if math.Abs(accepted-want) > 0.01*want {
				t.Errorf("accepted %.2f/s of the probes, want %.2f/s", accepted, want)
			}
		})
	}
}
