//go:build linux

// The scenarios of production conditions (issue 15) in the performance
// harness (bench_test.go), all with the default settings (no --rate, no
// --workers): sporadic 429s and 500s with no quota, twice on one store;
// quotas behind slow answers (1-3 s, 0.5-1.5 s); a 60 s outage in a
// 5,000-row run; and a quota halved in the middle of a run through the
// sandbox's control route.

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
)

// The targets of these scenarios.
const (
	targetNoiseShare     = 0.85 // enrolled rows/s ÷ --max-rate, 5 % 429 + 5 % 500, no quota
	targetNoiseRequests  = 0.95 // requests sent per second ÷ --max-rate
	targetSlowQuotaShare = 0.90 // rows/s ÷ quota, answers of seconds
	targetSlowQuota429   = 0.03 // share of requests refused by the quota
	targetOutageProbes   = 1    // requests a second while down, once the pool has seen the outage
	targetHalvedShare    = 0.85 // rows/s ÷ the new quota, from 30 s after the change
	noiseRows            = 3000
	slowQuota30Rows      = 3000
	slowQuota200Rows     = 12000
	outageRows           = 5000
	outageAfter          = 20 * time.Second
	outageFor            = 60 * time.Second
	halvedRows           = 2200
	halvedAfter          = 20 * time.Second
	halvedSettle         = 30 * time.Second
)

// control posts body to the sandbox's control route.
func (s *sandboxProc) control(t *testing.T, body string) {
	t.Helper()
	s.Control(t, body)
}

// steady reports a steady-state share against a target (at least want).
func (r *benchReport) steady(name string, want float64, ok bool, got float64) {
	if !ok {
		r.target(name+" (steady state)", fmt.Sprintf("≥ %.2f", want), "not measured", false)
		return
	}
	r.target(name+" (steady state)", fmt.Sprintf("≥ %.2f", want), fmt.Sprintf("%.3f", got), got >= want)
}

// steadyAtMost reports a steady-state share against a target (at most want).
func (r *benchReport) steadyAtMost(name string, want float64, ok bool, got float64) {
	if !ok {
		r.target(name+" (steady state)", fmt.Sprintf("≤ %.0f %%", 100*want), "not measured", false)
		return
	}
	r.target(name+" (steady state)", fmt.Sprintf("≤ %.0f %%", 100*want), fmt.Sprintf("%.1f %%", 100*got), got <= want)
}

// prodLine is the table line of one default-settings run.
func prodLine(name, what string, rows int, r importResult, server time.Duration, note string) benchLine {
	if r.Exit != 0 || r.Sum.Enrolled != rows {
		note += fmt.Sprintf("; **exit %d: enrolled %d, failed %d, pending %d**", r.Exit, r.Sum.Enrolled, r.Sum.Failed, r.Sum.Pending)
	}
	return benchLine{Scenario: name, What: what, Rows: rows, Wall: r.Wall, CPU: r.CPU, Server: server,
		RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize, Note: note}
}

// learnedOf is the learned quota the summary names, or "none".
func learnedOf(stderr string) string {
	if sub := learnedRe.FindStringSubmatch(stderr); sub != nil {
		return sub[1] + "/s"
	}
	return "none"
}

// Steady state: the whole run's figures include its start (finding the
// rate, opening the window) and its drain (the last answers, with fewer and
// fewer requests in flight), a few seconds each. The steady state is the
// part of the run between steadyFrom and steadyTo of its rows enrolled, from
// the sandbox's counters polled every steadyPoll.
const (
	steadyFrom = 0.15
	steadyTo   = 0.90
	steadyPoll = 250 * time.Millisecond
)

// steadySample is the sandbox's counters at a time.
type steadySample struct {
	at time.Time
	st sandbox.Stats
}

// steadyWatch polls the sandbox's counters until stop is called, which
// returns the samples.
func steadyWatch(s *sandboxProc) (stop func() []steadySample) {
	var out []steadySample
	quit, done := make(chan struct{}), make(chan struct{})
	poll := func() {
		resp, err := http.Get(s.url + sandbox.StatePath)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var st sandbox.State
		if json.NewDecoder(resp.Body).Decode(&st) == nil {
			out = append(out, steadySample{time.Now(), st.Stats})
		}
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(steadyPoll)
		defer tick.Stop()
		poll()
		for {
			select {
			case <-quit:
				poll()
				return
			case <-tick.C:
				poll()
			}
		}
	}()
	return func() []steadySample {
		close(quit)
		<-done
		return out
	}
}

// steadyFigures are a run's figures over its steady state.
type steadyFigures struct {
	ok        bool // the samples covered a steady state
	seconds   float64
	enrolled  float64 // per second
	requests  float64 // per second
	refused   float64 // share of requests refused by the quota
	throttled float64 // share of requests answered 429 (quota or noise)
}

// steadyOf returns the figures between the samples where the enrollments
// since base first reached steadyFrom and last stayed under steadyTo of rows.
func steadyOf(samples []steadySample, base sandbox.Stats, rows int) steadyFigures {
	from, to := -1, -1
	for i, s := range samples {
		n := float64(s.st.Enrolled - base.Enrolled)
		if from < 0 && n >= steadyFrom*float64(rows) {
			from = i
		}
		if n <= steadyTo*float64(rows) {
			to = i
		}
	}
	if from < 0 || to <= from {
		return steadyFigures{}
	}
	a, b := samples[from], samples[to]
	sec := b.at.Sub(a.at).Seconds()
	if sec <= 0 {
		return steadyFigures{}
	}
	req := float64(b.st.Requests - a.st.Requests)
	f := steadyFigures{ok: true, seconds: sec, enrolled: float64(b.st.Enrolled-a.st.Enrolled) / sec, requests: req / sec}
	if req > 0 {
		f.refused = float64(b.st.QuotaRefused-a.st.QuotaRefused) / req
		f.throttled = float64(b.st.QuotaRefused-a.st.QuotaRefused+b.st.Throttled-a.st.Throttled) / req
	}
	return f
}

// steadyText words the steady-state figures for a table note.
func steadyText(f steadyFigures, of float64, ofName string) string {
	if !f.ok {
		return "steady state: not measured (too few samples)"
	}
	return fmt.Sprintf("steady state (%.0f-%.0f %% of rows enrolled, %.1f s): %.3f of %s in enrolled rows/s, requests %.3f of it, %.1f %% quota 429s",
		100*steadyFrom, 100*steadyTo, f.seconds, f.enrolled/of, ofName, f.requests/of, 100*f.refused)
}

// benchNoise: no quota, 5 % of requests answered 429 and 5 % 500 at random,
// 50 ms answers: noise, not a quota. Two runs on one store (the second with
// fresh users) should both go at about --max-rate: at most 0.9025 of the
// requests can succeed, so 0.85 of --max-rate in enrolled rows means sending
// at 0.95 of it.
func benchNoise(t *testing.T, e *benchEnv, rep *benchReport) {
	const name = "no quota, 5 % 429 + 5 % 500, 50ms"
	sb := e.startSandbox(quotaLatency, "--throttle-rate", "0.05", "--fail-rate", "0.05")
	db := filepath.Join(e.dir, "noise.db")
	var before sandbox.Stats
	for i, what := range []string{"importer, default", "importer, default, next run"} {
		m := e.manifest(fmt.Sprintf("noise%d", i), noiseRows)
		watch := steadyWatch(sb)
		r := e.runImportWith(m, db, sb.url, 0)
		steady := steadyOf(watch(), before, noiseRows)
		st := sb.state(t)
		os.Remove(m)
		sent := st.Requests - before.Requests
		share := float64(r.Sum.Enrolled) / r.Wall.Seconds() / defaultMaxRate
		reqShare := float64(sent) / r.Wall.Seconds() / defaultMaxRate
		note := fmt.Sprintf("%.3f of --max-rate 50 in enrolled rows/s; %d requests (%.3f of it a second), %d answered 429, %d 500; learned %s",
			share, sent, reqShare, st.Throttled-before.Throttled, st.Failed-before.Failed, learnedOf(r.Stderr))
		note += "; " + steadyText(steady, defaultMaxRate, "--max-rate")
		rep.add(prodLine(name, what, noiseRows, r, 0, note))
		rep.target(fmt.Sprintf("%s, %s: enrolled rows/s ÷ --max-rate (whole run)", name, what), fmt.Sprintf("≥ %.2f", targetNoiseShare),
			fmt.Sprintf("%.3f", share), share >= targetNoiseShare && r.Exit == 0)
		rep.target(fmt.Sprintf("%s, %s: requests a second ÷ --max-rate (whole run)", name, what), fmt.Sprintf("≥ %.2f", targetNoiseRequests),
			fmt.Sprintf("%.3f", reqShare), reqShare >= targetNoiseRequests)
		rep.steady(fmt.Sprintf("%s, %s: enrolled rows/s ÷ --max-rate", name, what), targetNoiseShare, steady.ok, steady.enrolled/defaultMaxRate)
		rep.steady(fmt.Sprintf("%s, %s: requests a second ÷ --max-rate", name, what), targetNoiseRequests, steady.ok, steady.requests/defaultMaxRate)
		before = st
	}
	sb.stop()
	os.Remove(db)
	rep.notes = append(rep.notes, fmt.Sprintf("Noise: %d rows a run, the second run on the first one's store "+
		"with fresh users; the sandbox runs with --throttle-rate 0.05 --fail-rate 0.05 --latency 50ms.", noiseRows))
}

// benchSlowQuota: a quota behind answers of seconds (latency + jitter).
func benchSlowQuota(t *testing.T, e *benchEnv, rep *benchReport, name string, quota float64, rows int,
	latency, jitter time.Duration, args ...string) {
	slug := benchSlug(name)
	m := e.manifest(slug, rows)
	db := filepath.Join(e.dir, slug+".db")
	sb := e.startSandbox(latency, "--latency-jitter", jitter.String(), "--quota", fmt.Sprint(quota))
	watch := steadyWatch(sb)
	r := e.runImportWith(m, db, sb.url, 0, args...)
	steady := steadyOf(watch(), sandbox.Stats{}, rows)
	st := sb.fullState(t).Stats
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	share := float64(r.Sum.Enrolled) / r.Wall.Seconds() / quota
	refused := 0.0
	if st.Requests > 0 {
		refused = float64(st.QuotaRefused) / float64(st.Requests)
	}
	what := "importer, default"
	if len(args) > 0 {
		what = "importer, " + strings.Join(args, " ")
	}
	rep.add(prodLine(name, what, rows, r, server, fmt.Sprintf(
		"%.3f of the quota; 429s %.1f %% (%d of %d); at most %d in flight at the sandbox, %d accepted in 1 s; learned %s",
		share, 100*refused, st.QuotaRefused, st.Requests, st.MaxInFlight, st.MaxAcceptedPerSecond, learnedOf(r.Stderr))+
		"; "+steadyText(steady, quota, "the quota")))
	rep.target(name+": rows/s ÷ quota (whole run)", fmt.Sprintf("≥ %.2f", targetSlowQuotaShare), fmt.Sprintf("%.3f", share),
		share >= targetSlowQuotaShare && r.Exit == 0)
	rep.target(name+": requests answered 429 (whole run)", fmt.Sprintf("≤ %.0f %%", 100*targetSlowQuota429),
		fmt.Sprintf("%.1f %%", 100*refused), refused <= targetSlowQuota429)
	rep.steady(name+": rows/s ÷ quota", targetSlowQuotaShare, steady.ok, steady.enrolled/quota)
	rep.steadyAtMost(name+": requests answered 429", targetSlowQuota429, steady.ok, steady.refused)
}

// benchQuota30Slow: an unknown 30/s quota behind answers of 1-3 s.
func benchQuota30Slow(t *testing.T, e *benchEnv, rep *benchReport) {
	benchSlowQuota(t, e, rep, "quota 30/s, answers 1-3 s", 30, slowQuota30Rows, time.Second, 2*time.Second)
}

// benchQuota200Slow: a 200/s quota behind answers of 0.5-1.5 s, with the
// ceiling raised above it.
func benchQuota200Slow(t *testing.T, e *benchEnv, rep *benchReport) {
	benchSlowQuota(t, e, rep, "quota 200/s, answers 0.5-1.5 s", 200, slowQuota200Rows, 500*time.Millisecond, time.Second,
		"--max-rate", "250")
}

// benchOutage: the service goes down (connections reset) for 60 s in the
// middle of a 5,000-row run: no row may fail, the run must finish, and
// once the pool has seen the outage it probes at most once a second.
func benchOutage(t *testing.T, e *benchEnv, rep *benchReport) {
	const name = "60 s outage, 50ms"
	m := e.manifest("outage", outageRows)
	db := filepath.Join(e.dir, "outage.db")
	sb := e.startSandbox(quotaLatency, "--down-after", outageAfter.String(), "--down-for", outageFor.String())
	r := e.runImportWith(m, db, sb.url, 0)
	st := sb.fullState(t)
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	// The first seconds the pool meets the outage are it finding out (3 s
	// of nothing but failures); from the fifth second on, it should probe.
	_, probes := prodProbes(st.DownSeconds)
	rep.add(prodLine(name, "importer, default", outageRows, r, server, fmt.Sprintf(
		"outage from %s for %s; %d requests while down, at most %d in a second overall and %d from the 5th second the run met it; failed %d",
		outageAfter, outageFor, st.Stats.Down, st.Stats.MaxDownPerSecond, probes, r.Sum.Failed)))
	rep.target(name+": rows failed", "0", fmt.Sprint(r.Sum.Failed), r.Sum.Failed == 0)
	rep.target(name+": the run finishes", "exit 0, every row enrolled", fmt.Sprintf("exit %d, %d of %d enrolled", r.Exit, r.Sum.Enrolled, outageRows),
		r.Exit == 0 && r.Sum.Enrolled == outageRows)
	rep.target(name+": requests a second while down (from the 5th second the run met it)", fmt.Sprintf("≤ %d", targetOutageProbes),
		fmt.Sprint(probes), probes <= targetOutageProbes && st.Stats.Down > 0)
	if st.Stats.Down == 0 {
		t.Logf("%s: the run sent nothing during the outage", name)
	}
}

// benchQuotaHalves: a quota of 50/s becomes 25/s in the middle of a run
// (the sandbox's control route). The share of the new quota is measured
// from 30 s after the change to the end of the run, from the sandbox's
// count of enrollments.
func benchQuotaHalves(t *testing.T, e *benchEnv, rep *benchReport) {
	const name, from, to = "quota halves 50 → 25/s, 50ms", 50.0, 25.0
	m := e.manifest("halves", halvedRows)
	db := filepath.Join(e.dir, "halves.db")
	sb := e.startSandbox(quotaLatency, "--quota", fmt.Sprint(from))
	done := make(chan procResult, 1)
	go func() {
		done <- e.runBin([]string{"SMILE_BASE_URL=" + sb.url, "BULKENROLL_STORE=" + db},
			"run", "--manifest", m, "--no-progress", "--json")
	}()
	var p procResult
	wait := func(d time.Duration) bool {
		select {
		case p = <-done:
			return false
		case <-time.After(d):
			return true
		}
	}
	var enrolled0 int
	var t0 time.Time
	running := wait(halvedAfter)
	if running {
		sb.control(t, fmt.Sprintf(`{"quota":%g}`, to))
		running = wait(halvedSettle)
	}
	if running {
		enrolled0, t0 = sb.state(t).Enrolled, time.Now()
		p = <-done
	}
	t1 := time.Now()
	st := sb.state(t)
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	var r importResult
	r.procResult = p
	_ = json.Unmarshal([]byte(strings.TrimSpace(p.Stdout)), &r.Sum)
	share := 0.0
	if !t0.IsZero() && t1.Sub(t0) > 0 {
		share = float64(st.Enrolled-enrolled0) / t1.Sub(t0).Seconds() / to
	}
	note := fmt.Sprintf("quota %g/s, %g/s from %s; %.3f of the new quota from %s after the change to the end (%d enrollments in %.1f s); 429s %d of %d",
		from, to, halvedAfter, share, halvedSettle, st.Enrolled-enrolled0, t1.Sub(t0).Seconds(), st.QuotaRefused, st.Requests)
	if t0.IsZero() {
		note += "; **the run ended before the window**"
	}
	rep.add(prodLine(name, "importer, default", halvedRows, r, server, note))
	rep.target(name+": rows/s ÷ new quota, from 30 s after the change", fmt.Sprintf("≥ %.2f", targetHalvedShare),
		fmt.Sprintf("%.3f", share), share >= targetHalvedShare && p.Exit == 0)
}
