package importer

import (
	"fmt"
	"testing"
	"time"
)

// TestGateGrid runs the simulator over the grid of issue 15: answer times
// from 50 ms to 4 s, quotas from 10/s to 200/s (and none), noise from 0 to
// 10 % (half 429s, half 5xx, at random), wherever quota × answer time fits
// in --max-workers, with the default settings (--rate auto, --workers
// auto), and asserts the shares of the targets.
func TestGateGrid(t *testing.T) {
	type answers struct {
		name   string
		lo, hi time.Duration
	}
	rtts := []answers{
		{"50ms", 40 * time.Millisecond, 60 * time.Millisecond},
		{"250ms", 200 * time.Millisecond, 300 * time.Millisecond},
		{"0.5-1.5s", 500 * time.Millisecond, 1500 * time.Millisecond},
		{"1-3s", time.Second, 3 * time.Second},
		{"3-4s", 3 * time.Second, 4 * time.Second},
	}
	quotas := []float64{0, 10, 30, 50, 100, 200}
	noises := []float64{0, 0.05, 0.10}
	const maxWorkers = 256
	for _, a := range rtts {
		mean := (a.lo + a.hi).Seconds() / 2
		for _, quota := range quotas {
			maxRate := defaultMaxRate
			if quota > defaultMaxRate {
				maxRate = 250
			}
			if max(quota, maxRate)*mean > maxWorkers && quota*mean > maxWorkers {
				continue
			}
			if quota == 0 && maxRate*mean > maxWorkers {
				continue
			}
			for _, noise := range noises {
				name := fmt.Sprintf("%s/quota %g/noise %g", a.name, quota, noise)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					target := maxRate
					if quota > 0 {
						target = min(quota, maxRate)
					}
					sp := simSpec{
						quota: constQuota(quota), p429: noise / 2, p5xx: noise / 2,
						cfg:      gateConfig{Auto: true, Max: maxRate, Workers: maxWorkers, AutoWindow: true},
						rtt:      uniform(a.lo, a.hi),
						duration: 150 * time.Second, from: 30 * time.Second, seed: uint64(quota*1000 + noise*100),
					}
					r := simulate(t, sp)
					sent, enrolled := r.sentRate()/target, r.enrolledRate()/target
					share429 := float64(r.quota429) / max(float64(r.sent), 1)
					t.Logf("sent %.3f, enrolled %.3f of %g/s; quota 429s %.1f%%; window up to %d, in flight up to %d; learned %.1f, sustained %.1f; failed %d; %d episodes; limiters %v",
						sent, enrolled, target, 100*share429, r.maxWindow, r.maxInFlight, r.learned, r.sustained, r.failed, r.cuts, r.limiters)
					// The share of requests that can succeed: noise takes its part.
					ok := (1 - noise/2) * (1 - noise/2)
					wantEnrolled := 0.9
					switch {
					case quota == 0:
						if sent < 0.95 {
							t.Errorf("sent %.3f of --max-rate, want at least 0.95", sent)
						}
						wantEnrolled = 0.95 * ok * 0.95
					case noise > 0:
						wantEnrolled = 0.85 * (1 - noise)
					case quota == 50 && a.hi <= 100*time.Millisecond:
						wantEnrolled = 0.93
					}
					if enrolled < wantEnrolled {
						t.Errorf("enrolled %.3f of %g/s, want at least %.3f", enrolled, target, wantEnrolled)
					}
					if quota > 0 && share429 > 0.03 {
						t.Errorf("%.1f%% of requests met the quota's 429, want at most 3%%", 100*share429)
					}
					if r.failed > 0 && noise == 0 {
						t.Errorf("%d rows failed", r.failed)
					}
				})
			}
		}
	}
}
