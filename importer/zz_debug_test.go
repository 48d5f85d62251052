package importer

import (
	"testing"
	"time"
)

func TestZZDebug(t *testing.T) {
	gateTrace = func(now time.Time, what string, rate, limit float64) {
		t.Logf("%v %s rate %.2f limit %.2f", now.Format("04:05.000"), what, rate, limit)
	}
	defer func() { gateTrace = nil }()
	episodeTrace = func(good, thr int, span float64) { t.Logf("good %d thr %d span %.2f", good, thr, span) }
	defer func() { episodeTrace = nil }()
	r := simulate(t, simSpec{quota: constQuota(10), cfg: gateConfig{Auto: true, Workers: 256, AutoWindow: true},
		rtt: uniform(40*time.Millisecond, 60*time.Millisecond), duration: 150 * time.Second, from: 30 * time.Second})
	t.Logf("%+v", r)
}
