//go:build unix

package main

// End-to-end tests of the operating features (issues 10 and 11): the
// adaptive rate (--rate auto, --max-rate) against the sandbox's --quota, and
// what long runs need: status while a run holds the store and after it was
// killed, JSON logs, Prometheus metrics, sharding and report --run. Each test
// runs the real binary against the sandbox binary (e2e_helpers_test.go).

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"bulkenroll/store"
)

// opsReadLive reads the run's live snapshot next to the store; ok is false
// while there is none (or it is being replaced).
func opsReadLive(c *e2eCLI) (store.Live, bool) {
	b, err := os.ReadFile(store.LivePath(c.Store()))
	if err != nil {
		return store.Live{}, false
	}
	var l store.Live
	if err := json.Unmarshal(b, &l); err != nil {
		return store.Live{}, false
	}
	return l, true
}

// opsWaitLive waits for a snapshot of run runID for which cond holds.
func opsWaitLive(t *testing.T, c *e2eCLI, runID uint64, limit time.Duration, what string, cond func(store.Live) bool) store.Live {
	t.Helper()
	var got store.Live
	e2eWaitUntil(t, limit, what, func() bool {
		l, ok := opsReadLive(c)
		if ok && l.RunID == runID && cond(l) {
			got = l
			return true
		}
		return false
	})
	return got
}

var opsLearnedRE = regexp.MustCompile(`learned quota about (\d+)/s`)

// opsLearned returns the learned quota the human summary names, or -1.
func opsLearned(stderr string) int {
	m := opsLearnedRE.FindStringSubmatch(stderr)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// opsShare is part/whole, 0 for an empty whole.
func opsShare(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// TestOpsAutoRate runs the tests of --rate auto side by side, before the
// package's parallel tests start (a test that is not parallel runs first):
// what they check (the rate a run rises to, the quota it learns) follows
// what the client can send, which a machine busy with the CPU-heavy tests
// would hold down. They mostly wait on the rate, so three at once are cheap.
func TestOpsAutoRate(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"RisesToQuota":        opsAutoRateRisesToQuota,
		"FallsOn429":          opsAutoRateFallsOn429,
		"NeverExceedsMaxRate": opsAutoRateNeverExceedsMaxRate,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t)
		})
	}
}

// opsAutoRateRisesToQuota: with --rate auto (the default) the rate
// starts at 10/s, rises to a 20/s quota without going over it, pays for the
// discovery with few 429s, and the store remembers the quota it learned: the
// next run starts near it instead of at 10/s.
func opsAutoRateRisesToQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("about 25 s of rate-limited requests")
	}
	const quota, burst = 20, 2 // the sandbox's bucket: max(1, quota/10)
	sb := e2eStartSandbox(t, "--quota", strconv.Itoa(quota), "--latency", "20ms")
	c := e2eNewCLI(t, sb.URL)
	m1, ids1 := e2eManifest(t, c.Dir, "quota", 300)

	p := c.Start("run", "--manifest", m1, "--json", "--no-progress", "--workers", "8")
	first := opsWaitLive(t, c, 1, 30*time.Second, "run 1's first live snapshot", func(store.Live) bool { return true })
	if first.Rate != 10 || first.LearnedRate != 0 {
		t.Errorf("run 1 started at rate %g (learned %g), want the default start 10/s with nothing learned", first.Rate, first.LearnedRate)
	}
	r1 := p.Wait()
	e2eWantCode(t, r1, 0)
	s1 := e2eParseSummary(t, r1)
	e2eWantSummary(t, s1, e2eSummary{Rows: 300, Enrolled: 300})
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids1)
	e2eWantAllEnrolled(t, c, ids1)
	t.Logf("run 1: %.1fs, %d requests, %d refused by the quota, max %d accepted/s; %s",
		s1.Seconds, st.Stats.Requests, st.Stats.QuotaRefused, st.Stats.MaxAcceptedPerSecond, opsLine(r1.Stderr, "requests"))
	// The sandbox's token bucket lets at most quota+burst through in any
	// second; the run must have risen well above its 10/s start to reach
	// 15 in one second (at 10/s with the gate's burst of 1: at most 11).
	if n := st.Stats.MaxAcceptedPerSecond; n > quota+burst || n < 15 {
		t.Errorf("max accepted per second %d, want 15 to %d (risen from 10/s toward the quota, never over it)", n, quota+burst)
	}
	// The sandbox's bucket of two refuses in bursts, and the episodes that
	// find the quota cost some: at most 15 % over the whole discovery.
	if share := opsShare(st.Stats.QuotaRefused, st.Stats.Requests); share > 0.15 {
		t.Errorf("%d of %d requests (%.0f%%) were refused with 429, want at most 15%%", st.Stats.QuotaRefused, st.Stats.Requests, 100*share)
	}
	if rps := float64(s1.Rows) / s1.Seconds; rps < 12 {
		t.Errorf("run 1 did %.1f rows/s, want more than its 10/s start", rps)
	}
	if st.Stats.QuotaRefused == 0 {
		t.Fatalf("no 429 at all: the run never found the quota\n%s", r1)
	}
	// An episode measured over a short window can overshoot a small quota
	// (the 429s' sending limit stands in for a rate measured too low): at
	// most by a quarter.
	learned := opsLearned(r1.Stderr)
	if learned < 10 || learned > quota*5/4 {
		t.Fatalf("the summary's learned quota is %d, want 10 to %d:\n%s", learned, quota*5/4, r1.Stderr)
	}
	last, ok := opsReadLive(c)
	if !ok || !last.Done || last.LearnedRate <= 0 {
		t.Fatalf("run 1's last snapshot %+v, want done with a learned rate", last)
	}

	// A second run on the same store, with new users, starts just below the
	// quota run 1 saved, not at 10/s. (A quota is saved only when measured
	// as a sustained limit, several episodes at a similar rate; a run too
	// short for that saves nothing, and the next starts at 10/s again.)
	saved := strings.Contains(r1.Stderr, "sustained: the next run starts near it")
	before := st.Stats
	m2, ids2 := e2eManifest(t, c.Dir, "quota-again", 100)
	p = c.Start("run", "--manifest", m2, "--json", "--no-progress", "--workers", "8")
	first = opsWaitLive(t, c, 2, 30*time.Second, "run 2's first live snapshot", func(store.Live) bool { return true })
	switch {
	case saved && math.Abs(first.LearnedRate-last.LearnedRate) > 0.2*last.LearnedRate:
		t.Errorf("run 2 started with learned rate %g, want near run 1's %g", first.LearnedRate, last.LearnedRate)
	case saved && (first.Rate < 0.75*last.LearnedRate || first.Rate > last.LearnedRate*1.05 || first.Rate <= 10):
		t.Errorf("run 2 started at rate %g, want near run 1's learned %g and above the default start 10", first.Rate, last.LearnedRate)
	case !saved && (first.Rate != 10 || first.LearnedRate != 0):
		t.Errorf("run 1 saved nothing, yet run 2 started at rate %g, learned %g", first.Rate, first.LearnedRate)
	}
	r2 := p.Wait()
	e2eWantCode(t, r2, 0)
	e2eWantSummary(t, e2eParseSummary(t, r2), e2eSummary{Rows: 100, Enrolled: 100})
	st = sb.State(t)
	e2eWantEnrolledOnce(t, st, append(slices.Clone(ids1), ids2...))
	refused, sent := st.Stats.QuotaRefused-before.QuotaRefused, st.Stats.Requests-before.Requests
	t.Logf("run 2 (run 1 saved a quota: %v): %d requests, %d refused by the quota; %s", saved, sent, refused, opsLine(r2.Stderr, "requests"))
	// Finding the quota again from 10/s costs one episode: a few 429s
	// before it is confident, and those of the requests in flight.
	if limit := map[bool]float64{true: 0.10, false: 0.20}[saved]; opsShare(refused, sent) > limit {
		t.Errorf("run 2: %d of %d requests refused with 429, want at most %.0f%%", refused, sent, 100*limit)
	}
	if st.Stats.MaxAcceptedPerSecond > quota+burst {
		t.Errorf("max accepted per second %d, over %d", st.Stats.MaxAcceptedPerSecond, quota+burst)
	}
}

// opsLine returns the first line of s that contains sub, trimmed.
func opsLine(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// opsAutoRateFallsOn429: a quota (10/s) below the start's ceiling
// (--max-rate 50): the run meets 429s, backs off, learns a quota near 10 and
// still enrolls every row.
func opsAutoRateFallsOn429(t *testing.T) {
	if testing.Short() {
		t.Skip("about 15 s of rate-limited requests")
	}
	const quota = 10
	sb := e2eStartSandbox(t, "--quota", strconv.Itoa(quota))
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "fall", 80)

	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--workers", "8", "--max-rate", "50")
	e2eWantCode(t, r, 0)
	s := e2eParseSummary(t, r)
	e2eWantSummary(t, s, e2eSummary{Rows: 80, Enrolled: 80})
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	t.Logf("%.1fs, %d requests, %d refused by the quota, max %d accepted/s; %s",
		s.Seconds, st.Stats.Requests, st.Stats.QuotaRefused, st.Stats.MaxAcceptedPerSecond, opsLine(r.Stderr, "requests"))
	if st.Stats.QuotaRefused < 2 {
		t.Errorf("the sandbox refused %d requests with 429, want more than one", st.Stats.QuotaRefused)
	}
	if st.Stats.Requests != 80+st.Stats.QuotaRefused {
		t.Errorf("the sandbox got %d requests, want the 80 rows plus the %d refused", st.Stats.Requests, st.Stats.QuotaRefused)
	}
	// A quota is learned from the 429s, never much above the real one. Near
	// 10 is what a client that can send 10/s learns; one starved of CPU (two
	// race-built test runs on two cores) learns what it could send, as low
	// as 3/s: the lower bound only says the rate did not collapse.
	if learned := opsLearned(r.Stderr); learned < 2 || learned > 15 {
		t.Errorf("learned quota %d, want 2 to 15:\n%s", learned, r.Stderr)
	}
	if !strings.Contains(r.Stderr, fmt.Sprintf("%d throttled (429)", st.Stats.QuotaRefused)) {
		t.Errorf("the summary does not count the %d 429s:\n%s", st.Stats.QuotaRefused, r.Stderr)
	}
	// Held to the quota: 80 rows at 10/s (a bucket of 1) take 7.9 s at least.
	if s.Seconds < 7.9 {
		t.Errorf("the run took %.1fs: faster than the quota allows", s.Seconds)
	}
}

// opsAutoRateNeverExceedsMaxRate: with no quota to find, --rate auto
// climbs to --max-rate 15 and stays there.
//
// Burst allowance: the gate admits at most limit×T + burst requests in any
// T, its burst being min(max(1, int(15/10)), workers) = 1; the sandbox's
// one-second window sees arrivals, which loopback and scheduling (a race
// build on 2 shared cores) can shift by some tens of milliseconds, bunching
// at most about one more request into a second. Hence 15 + 1 + 1 = 17.
func opsAutoRateNeverExceedsMaxRate(t *testing.T) {
	if testing.Short() {
		t.Skip("about 15 s of rate-limited requests")
	}
	const maxRate, allowance = 15, 2
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "ceiling", 200)

	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--workers", "8", "--max-rate", strconv.Itoa(maxRate))
	e2eWantCode(t, r, 0)
	s := e2eParseSummary(t, r)
	e2eWantSummary(t, s, e2eSummary{Rows: 200, Enrolled: 200})
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	rps := float64(s.Rows) / s.Seconds
	t.Logf("%.1fs (%.1f rows/s), %d requests, max %d per second; %s",
		s.Seconds, rps, st.Stats.Requests, st.Stats.MaxPerSecond, opsLine(r.Stderr, "requests"))
	// With no quota the sandbox counts every arrival (max_per_second); its
	// max_accepted_per_second only counts requests let through a quota.
	// Over five seconds (arrivals cluster on a loaded machine, see
	// TestE2ERateLimit): at most 5 × max-rate, plus half a second's worth
	// and the allowance.
	if n, bound := st.Stats.MaxPer5Seconds, 5*maxRate+maxRate/2+allowance; n > bound {
		t.Errorf("the sandbox saw %d requests in five seconds, want at most %d", n, bound)
	}
	if n := st.Stats.MaxPerSecond; n < maxRate-3 {
		t.Errorf("the sandbox saw at most %d requests in one second: the rate never climbed near --max-rate %d", n, maxRate)
	}
	if rps > maxRate+1 {
		t.Errorf("the run did %.1f rows/s, want at most about %d", rps, maxRate)
	}
	if st.Stats.Throttled+st.Stats.QuotaRefused != 0 || strings.Contains(r.Stderr, "429") || opsLearned(r.Stderr) >= 0 {
		t.Errorf("no quota, yet 429s or a learned quota:\n%s", r.Stderr)
	}
}

// opsStatus is what `status --json` prints, live or not.
type opsStatus struct {
	Store   string `json:"store"`
	Shard   string `json:"shard"`
	Counts  map[string]int
	Total   int        `json:"total"`
	LastRun *store.Run `json:"last_run"`
	Live    *struct {
		store.Live
		Running bool `json:"running"`
		Killed  bool `json:"killed"`
	} `json:"live"`
}

func opsStatusJSON(t *testing.T, c *e2eCLI) (opsStatus, e2eResult) {
	t.Helper()
	r := c.Run("status", "--json")
	var s opsStatus
	if r.Code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r)
		}
	}
	return s, r
}

// TestOpsStatusDuringRun: while a run holds the store, status shows its
// live figures (which move), and report exits 2 at once naming the store.
func TestOpsStatusDuringRun(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--latency", "200ms")
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "live", 200)
	p := c.Start("run", "--manifest", m, "--no-progress", "--workers", "2")

	var s1 opsStatus
	e2eWaitUntil(t, 30*time.Second, "status --json to show the run live", func() bool {
		s, r := opsStatusJSON(t, c)
		if p.Exited() {
			t.Fatalf("the run ended early:\n%s", p.Wait())
		}
		if r.Code != 0 || s.Live == nil || !s.Live.Running {
			return false
		}
		s1 = s
		return true
	})
	// (The total is -1 until the manifest has been counted.)
	if s1.Live.RunID != 1 || (s1.Live.Total != 200 && s1.Live.Total != -1) || s1.Live.Killed || s1.Live.Done || s1.Live.PID != p.PID() {
		t.Errorf("live status %+v, want run 1 of 200 rows by pid %d, running", *s1.Live, p.PID())
	}
	if s1.Store != c.Store() {
		t.Errorf("status names store %q, want %q", s1.Store, c.Store())
	}
	var s2 opsStatus
	e2eWaitUntil(t, 15*time.Second, "a newer live snapshot with more rows", func() bool {
		time.Sleep(200 * time.Millisecond)
		s, r := opsStatusJSON(t, c)
		e2eWantCode(t, r, 0)
		if s.Live == nil || !s.Live.Running {
			t.Fatalf("status during the run is not live:\n%s", r)
		}
		s2 = s
		return s.Live.Updated.After(s1.Live.Updated) && s.Live.Enrolled > s1.Live.Enrolled
	})
	if s2.Live.Rows < s1.Live.Rows || s2.Live.RowsPerSecond <= 0 || s2.Live.Total != 200 {
		t.Errorf("live figures went from %+v to %+v", *s1.Live, *s2.Live)
	}
	// The human form says so too.
	r := c.Run("status")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stdout, "in use by run #1") || !strings.Contains(r.Stdout, "of 200") {
		t.Errorf("status during the run:\n%s", r)
	}

	// report cannot read a store a run holds: exit 2 at once, naming it.
	r = c.Run("report")
	e2eWantCode(t, r, 2)
	if r.Elapsed > 5*time.Second {
		t.Errorf("report took %s to give up, want at once", r.Elapsed)
	}
	if !strings.Contains(r.Stderr, c.Store()) || !strings.Contains(r.Stderr, "status") {
		t.Errorf("report's message names neither the store %s nor status:\n%s", c.Store(), r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("report printed on stdout: %q", r.Stdout)
	}
	if p.Exited() {
		t.Fatalf("the run ended before the checks were done; make it slower:\n%s", p.Wait())
	}

	// Stop the run; status is then the store's again.
	p.Signal(syscall.SIGTERM)
	e2eWantCode(t, p.Wait(), 130)
	s, r := opsStatusJSON(t, c)
	e2eWantCode(t, r, 0)
	if s.Live != nil || s.LastRun == nil || s.LastRun.Outcome != "interrupted" || s.Counts["enrolled"] < int(s2.Live.Enrolled) {
		t.Errorf("status after the run: %s", r.Stdout)
	}
}

// TestOpsStatusAfterKill: a run killed with SIGKILL leaves no end in the
// store; status says it was killed (exit 0), and the next run resumes.
func TestOpsStatusAfterKill(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--latency", "200ms")
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "sigkill", 60)
	p := c.Start("run", "--manifest", m, "--no-progress", "--workers", "2")
	opsWaitLive(t, c, 1, 30*time.Second, "a live snapshot with rows enrolled", func(l store.Live) bool { return l.Enrolled >= 2 && !l.Done })
	p.Signal(syscall.SIGKILL)
	if r := p.WaitFor(e2eHang); r.Code != -1 {
		t.Fatalf("want the run killed by the signal:\n%s", r)
	}

	r := c.Run("status")
	e2eWantCode(t, r, 0)
	if !strings.Contains(r.Stdout, "run #1 was killed") || !strings.Contains(r.Stdout, "the next run resumes") {
		t.Errorf("status after SIGKILL does not say the run was killed:\n%s", r)
	}
	s, r := opsStatusJSON(t, c)
	e2eWantCode(t, r, 0)
	if s.Live == nil || !s.Live.Killed || s.Live.Running || s.Live.RunID != 1 || s.LastRun == nil || s.LastRun.ID != 1 {
		t.Errorf("status --json after SIGKILL: want live.killed for run 1:\n%s", r.Stdout)
	}

	// The next run resumes and ends well; the kill is history.
	r = c.Run("run", "--manifest", m, "--no-progress", "--json", "--workers", "16", "--rate", "0")
	e2eWantCode(t, r, 0)
	sum := e2eParseSummary(t, r)
	if sum.Rows != 60 || sum.Enrolled+sum.Skipped != 60 || sum.Skipped == 0 {
		t.Errorf("resumed run: %+v, want 60 rows enrolled or skipped, some skipped", sum)
	}
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	r = c.Run("status")
	e2eWantCode(t, r, 0)
	if strings.Contains(r.Stdout, "was killed") || !strings.Contains(r.Stdout, "last run  #2 finished") {
		t.Errorf("status after the resumed run:\n%s", r)
	}
}

// opsJSONLines parses every line of stderr as a JSON object.
func opsJSONLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for line := range strings.Lines(stderr) {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Errorf("stderr line is not a JSON object: %q: %v", line, err)
			continue
		}
		objs = append(objs, o)
	}
	return objs
}

// TestOpsJSONLogs: --log-format json (and BULKENROLL_LOG_FORMAT=json) make
// standard error one JSON object a line: a "row" record per rejected row
// with its line, user, state, code and reason, and a "summary" at the end;
// the API key appears nowhere.
func TestOpsJSONLogs(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)

	// A user enrolled by another store: a conflict (2209) for this one.
	other := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(other.Dir, "t.jpg"), e2eJPEG(t, 9))
	om := filepath.Join(other.Dir, "m.csv")
	e2eWriteCSV(t, om, [][]string{{"user_id", "user_created_at", "photo"}, {"jl-taken", "2021-08-12", "t.jpg"}})
	e2eWantCode(t, other.Run("run", "--manifest", om, "--no-progress", "--rate", "0"), 0)

	c := e2eNewCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "a.jpg"), e2eJPEG(t, 1))
	e2eWriteFile(t, filepath.Join(c.Dir, "b.png"), e2ePNG(t, 2))
	m := filepath.Join(c.Dir, "m.csv")
	e2eWriteCSV(t, m, [][]string{
		{"user_id", "user_created_at", "photo"},
		{"jl-good-1", "2021-08-12", "a.jpg"},           // 2
		{"jl-bad-date", "12/08/2021", "a.jpg"},         // 3
		{"jl-good-2", "2021-08-12", "b.png"},           // 4
		{"jl-no-photo", "2021-08-12", "nope.jpg"},      // 5
		{"jl-good-1", "2021-08-12", "a.jpg"},           // 6 duplicate
		{"jl-taken", "2021-08-12", "b.png"},            // 7 2209 conflict
		{"jl-good-3", "2021-08-12T10:00:00Z", "a.jpg"}, // 8
	})
	r := c.Run("run", "--manifest", m, "--json", "--rate", "0", "--log-format", "json")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 7, Enrolled: 3, Rejected: 4})
	objs := opsJSONLines(t, r.Stderr)
	type row struct {
		line       int
		user, code string
		reasonHas  string
	}
	want := map[int]row{
		3: {3, "jl-bad-date", "", "user_created_at"},
		5: {5, "jl-no-photo", "", "file not found"},
		6: {6, "jl-good-1", "", "duplicate of line 2"},
		7: {7, "jl-taken", "2209", ""},
	}
	seen := map[int]bool{}
	for _, o := range objs {
		if o["msg"] != "row" {
			continue
		}
		line, _ := o["line"].(float64)
		w, ok := want[int(line)]
		if !ok || seen[int(line)] {
			t.Errorf("unexpected row record %v", o)
			continue
		}
		seen[int(line)] = true
		reason, _ := o["reason"].(string)
		if o["level"] != "WARN" || o["user_id"] != w.user || o["state"] != "rejected" || o["code"] != w.code ||
			reason == "" || !strings.Contains(reason, w.reasonHas) {
			t.Errorf("row record %v, want line %d user %q rejected, code %q, a reason with %q", o, w.line, w.user, w.code, w.reasonHas)
		}
	}
	for line := range want {
		if !seen[line] {
			t.Errorf("no row record for line %d:\n%s", line, r.Stderr)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("no JSON on stderr:\n%s", r)
	}
	sum := objs[len(objs)-1]
	if sum["msg"] != "summary" || sum["outcome"] != "finished" || sum["enrolled"] != 3.0 || sum["rejected"] != 4.0 || sum["rows"] != 7.0 {
		t.Errorf("last stderr record %v, want the summary: finished, 7 rows, 3 enrolled, 4 rejected", sum)
	}
	for _, o := range objs[:len(objs)-1] {
		if o["msg"] == "summary" {
			t.Errorf("a summary before the end: %v", o)
		}
	}
	if strings.Contains(r.Stdout+r.Stderr, e2eKey) {
		t.Errorf("the API key appears in the output:\n%s", r)
	}

	// The environment form, without --no-progress.
	c2 := e2eNewCLI(t, sb.URL)
	c2.Env["BULKENROLL_LOG_FORMAT"] = "json"
	m2, ids2 := e2eManifest(t, c2.Dir, "jl-env", 6)
	e2eWriteCSV(t, filepath.Join(c2.Dir, "bad.csv"), [][]string{{"user_id", "user_created_at", "photo"}, {"jl-env-bad", "2021-08-12", "gone.png"}})
	r = c2.Run("run", "--manifest", m2, "--json", "--rate", "0")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 6, Enrolled: 6})
	objs = opsJSONLines(t, r.Stderr)
	if len(objs) == 0 || objs[len(objs)-1]["msg"] != "summary" || objs[len(objs)-1]["enrolled"] != float64(len(ids2)) {
		t.Errorf("BULKENROLL_LOG_FORMAT=json: want JSON lines ending with the summary:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "run 1 finished") {
		t.Errorf("BULKENROLL_LOG_FORMAT=json printed the human summary:\n%s", r.Stderr)
	}
	r = c2.Run("run", "--manifest", filepath.Join(c2.Dir, "bad.csv"), "--rate", "0")
	e2eWantCode(t, r, 1)
	objs = opsJSONLines(t, r.Stderr)
	if len(objs) != 2 || objs[0]["msg"] != "row" || objs[0]["user_id"] != "jl-env-bad" || objs[0]["line"] != 2.0 || objs[1]["msg"] != "summary" {
		t.Errorf("BULKENROLL_LOG_FORMAT=json, one bad row: want a row record and the summary:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, e2eKey) {
		t.Errorf("the API key appears in the output:\n%s", r)
	}
}

// opsParseMetrics parses Prometheus text.
func opsParseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not Prometheus text: %v\n%s", err, text)
	}
	return fams
}

// opsMetric returns the value of the sample of family name whose labels
// include labels (name=value pairs), and whether there is one.
func opsMetric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// TestOpsMetricsFile: --metrics-file leaves Prometheus text with the run's
// final figures.
func TestOpsMetricsFile(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "prom", 12)
	// One more row, with no photo: rejected before sending.
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, m, append(b, []byte("prom-nophoto,2021-08-12,none.jpg\n")...))
	path := filepath.Join(c.Dir, "textfile", "bulkenroll.prom")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	r := c.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--metrics-file", path)
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 13, Enrolled: 12, Rejected: 1})
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	fams := opsParseMetrics(t, string(text))
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"bulkenroll_rows", []string{"state", "enrolled"}, float64(len(ids))},
		{"bulkenroll_rows", []string{"state", "rejected"}, 1},
		{"bulkenroll_rows", []string{"state", "pending"}, 0},
		{"bulkenroll_rows_read", nil, 13},
		{"bulkenroll_rows_total", nil, 13},
		{"bulkenroll_requests_total", []string{"answer", "enrolled"}, float64(len(ids))},
		{"bulkenroll_requests_total", []string{"answer", "throttled"}, 0},
		{"bulkenroll_throttled_total", nil, 0},
		{"bulkenroll_run_id", nil, 1},
		{"bulkenroll_run_finished", nil, 1},
		{"bulkenroll_run_outcome", []string{"outcome", "finished"}, 1},
		{"bulkenroll_run_outcome", []string{"outcome", "running"}, 0},
	} {
		got, ok := opsMetric(fams, w.name, w.labels...)
		if !ok || got != w.want {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.want)
		}
	}
	if f := fams["bulkenroll_requests_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("bulkenroll_requests_total is not a counter: %v", f)
	}
	if _, ok := opsMetric(fams, "bulkenroll_last_success_timestamp_seconds"); !ok {
		t.Errorf("no bulkenroll_last_success_timestamp_seconds after enrollments")
	}
	// Replaced atomically: no temporary file is left in the folder.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the textfile folder holds %q, want only bulkenroll.prom", names)
	}
}

// opsFreePort returns a loopback address that was free a moment ago.
func opsFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestOpsMetricsAddr: --metrics-addr serves the live metrics at /metrics
// while a (slow) run lasts, and stops when it ends.
func TestOpsMetricsAddr(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t, "--latency", "200ms")
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "scrape", 40)
	addr := opsFreePort(t)
	p := c.Start("run", "--manifest", m, "--json", "--no-progress", "--workers", "2", "--metrics-addr", addr)
	client := &http.Client{Timeout: 5 * time.Second}
	scrape := func() (map[string]*dto.MetricFamily, error) {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		return opsParseMetrics(t, string(b)), nil
	}
	var live map[string]*dto.MetricFamily
	e2eWaitUntil(t, 30*time.Second, "/metrics to show enrolled rows during the run", func() bool {
		if p.Exited() {
			t.Fatalf("the run ended before /metrics was scraped:\n%s", p.Wait())
		}
		fams, err := scrape()
		if err != nil {
			return false
		}
		n, _ := opsMetric(fams, "bulkenroll_rows", "state", "enrolled")
		live = fams
		return n >= 1
	})
	if v, ok := opsMetric(live, "bulkenroll_run_finished"); !ok || v != 0 {
		t.Errorf("during the run, bulkenroll_run_finished = %v (present %v), want 0", v, ok)
	}
	if v, _ := opsMetric(live, "bulkenroll_run_outcome", "outcome", "running"); v != 1 {
		t.Errorf("during the run, run_outcome{running} = %v, want 1", v)
	}
	if v, ok := opsMetric(live, "bulkenroll_rows_total"); !ok || v != 40 {
		t.Errorf("rows_total = %v (present %v), want 40", v, ok)
	}
	if _, ok := opsMetric(live, "bulkenroll_requests_total", "answer", "enrolled"); !ok {
		t.Errorf("no requests_total{answer=enrolled} during the run")
	}
	r := p.Wait()
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 40, Enrolled: 40})
	if _, err := scrape(); err == nil {
		t.Errorf("/metrics still answers after the run ended")
	}
}

// TestOpsShards: three shards at once against one sandbox, each with its own
// store: every user enrolled once, no user in two shards, the shards make up
// the manifest, and the combined rate stays within the three limits.
func TestOpsShards(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s of rate-limited requests")
	}
	t.Parallel()
	const n, perShard = 3, 10
	sb := e2eStartSandbox(t)
	rec := e2eRecordArrivals(t, sb.URL)
	base := e2eNewCLI(t, rec.URL)
	m, ids := e2eManifest(t, base.Dir, "shard", 300)

	clis := make([]*e2eCLI, n)
	procs := make([]*e2eProc, n)
	for k := range n {
		c := &e2eCLI{t: t, bin: base.bin, Dir: base.Dir, Env: maps.Clone(base.Env)}
		c.Env["BULKENROLL_STORE"] = filepath.Join(base.Dir, fmt.Sprintf("shard-%d.db", k))
		clis[k] = c
		procs[k] = c.Start("run", "--manifest", m, "--json", "--no-progress", "--workers", "4",
			"--rate", strconv.Itoa(perShard), "--shard", fmt.Sprintf("%d/%d", k, n))
	}
	owner := map[string]int{}
	counts := make([]int, n)
	for k := range n {
		r := procs[k].Wait()
		e2eWantCode(t, r, 0)
		s := e2eParseSummary(t, r)
		counts[k] = s.Rows
		if s.Enrolled != s.Rows || s.Rows == 0 {
			t.Errorf("shard %d: %+v, want every row of its shard enrolled", k, s)
		}
		for id, rec := range e2eReportByUser(t, clis[k]) {
			if prev, dup := owner[id]; dup {
				t.Errorf("user %s is in shards %d and %d", id, prev, k)
			}
			owner[id] = k
			if rec.State != "enrolled" {
				t.Errorf("shard %d: %s is %s", k, id, rec.State)
			}
		}
		if got := len(e2eReport(t, clis[k])); got != s.Rows {
			t.Errorf("shard %d: report lists %d records, summary %d rows", k, got, s.Rows)
		}
	}
	t.Logf("shard sizes %v", counts)
	if len(owner) != len(ids) {
		t.Errorf("the shards' reports list %d users, want the manifest's %d", len(owner), len(ids))
	}
	for _, id := range ids {
		if _, ok := owner[id]; !ok {
			t.Errorf("user %s is in no shard's report", id)
		}
	}
	for k, cnt := range counts {
		if cnt < 60 || cnt > 140 {
			t.Errorf("shard %d has %d of 300 rows: the hash does not spread them", k, cnt)
		}
	}
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, ids)
	// Each shard's own limiter (10/s, a burst of 1) holds for its users'
	// requests (see e2eRateCheck).
	for k := range n {
		users := map[string]bool{}
		for id, o := range owner {
			if o == k {
				users[id] = true
			}
		}
		at := rec.of(users)
		avg, err := e2eRateCheck(at, perShard, 1)
		t.Logf("shard %d: %d requests at %.1f/s on average", k, len(at), avg)
		if err != nil {
			t.Errorf("shard %d at --rate %d: %v", k, perShard, err)
		}
	}

	// --shards 3 with JOB_COMPLETION_INDEX=1 is --shard 1/3 (a fresh
	// sandbox and store, so the users are new there).
	sb2 := e2eStartSandbox(t)
	job := e2eNewCLI(t, sb2.URL)
	job.Env["JOB_COMPLETION_INDEX"] = "1"
	r := job.Run("run", "--manifest", m, "--json", "--no-progress", "--rate", "0", "--workers", "8", "--shards", "3")
	e2eWantCode(t, r, 0)
	var jobIDs, shard1 []string
	for id := range e2eReportByUser(t, job) {
		jobIDs = append(jobIDs, id)
	}
	for id, k := range owner {
		if k == 1 {
			shard1 = append(shard1, id)
		}
	}
	sort.Strings(jobIDs)
	sort.Strings(shard1)
	if !slices.Equal(jobIDs, shard1) {
		t.Errorf("--shards 3 with JOB_COMPLETION_INDEX=1 imported %d users, --shard 1/3 %d: not the same rows", len(jobIDs), len(shard1))
	}
	s, r2 := opsStatusJSON(t, job)
	e2eWantCode(t, r2, 0)
	if s.Shard != "1/3" {
		t.Errorf("status of the --shards store names shard %q, want 1/3", s.Shard)
	}

	// A store made for shard 0/3 refuses shard 1/3, and the whole
	// manifest, and sends nothing.
	before := sb.State(t).Stats.Requests
	for _, flags := range [][]string{{"--shard", "1/3"}, {}} {
		r = clis[0].Run(append([]string{"run", "--manifest", m, "--no-progress", "--rate", "0"}, flags...)...)
		e2eWantCode(t, r, 2)
		if !strings.Contains(r.Stderr, "shard") {
			t.Errorf("the refusal of %q does not speak of shards:\n%s", flags, r.Stderr)
		}
	}
	if after := sb.State(t).Stats.Requests; after != before {
		t.Errorf("the refused run sent %d requests", after-before)
	}
}

// TestOpsReportRun: report --run N lists exactly the rows run N settled; a
// run that skips an enrolled row does not take it over.
func TestOpsReportRun(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	full, ids := e2eManifest(t, c.Dir, "byrun", 40)
	// The first half: the full manifest's header and first 20 rows.
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	half := filepath.Join(c.Dir, "half.csv")
	e2eWriteFile(t, half, []byte(strings.Join(lines[:21], "")))

	e2eWantCode(t, c.Run("run", "--manifest", half, "--no-progress", "--rate", "0"), 0)
	r := c.Run("run", "--manifest", full, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 40, Enrolled: 20, Skipped: 20})

	for run, want := range map[string][]string{"1": ids[:20], "2": ids[20:]} {
		var got []string
		for _, rec := range e2eReport(t, c, "--run", run) {
			got = append(got, rec.UserID)
			if rec.State != "enrolled" || rec.JobID == "" || rec.SmileJobID == "" {
				t.Errorf("report --run %s: %+v, want enrolled with job IDs", run, rec)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("report --run %s lists %d users %v, want %d: %v", run, len(got), got, len(want), want)
		}
	}
	if recs := e2eReport(t, c, "--run", "2", "--state", "rejected"); len(recs) != 0 {
		t.Errorf("report --run 2 --state rejected lists %d rows, want none", len(recs))
	}
	r = c.Run("report", "--run", "3")
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, "no run #3") {
		t.Errorf("report --run 3 on a store with 2 runs:\n%s", r)
	}
}

// TestOpsJSONLogsWhenStopped: a run stopped by an account-level refusal
// (2205) with --log-format json still writes only JSON on standard error.
func TestOpsJSONLogsWhenStopped(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandboxKey(t, e2ePartner, "the-right-key")
	c := e2eNewCLI(t, sb.URL) // the test key, which the sandbox refuses
	m, _ := e2eManifest(t, c.Dir, "jl-stop", 4)
	r := c.Run("run", "--manifest", m, "--rate", "0", "--log-format", "json")
	e2eWantCode(t, r, 2)
	objs := opsJSONLines(t, r.Stderr)
	if len(objs) == 0 || objs[len(objs)-1]["msg"] != "summary" || objs[len(objs)-1]["outcome"] != "stopped" {
		t.Errorf("want the JSON summary, outcome stopped, last:\n%s", r.Stderr)
	}
}

// TestOpsFlagErrors: --shards without JOB_COMPLETION_INDEX and a busy
// --metrics-addr are usage errors (exit 2) that name the flag once, and
// send nothing.
func TestOpsFlagErrors(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "flagerr", 2)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--shards", []string{"--shards", "3"}},
		{"--metrics-addr", []string{"--metrics-addr", busy.Addr().String()}},
	} {
		r := c.Run(append([]string{"run", "--manifest", m, "--no-progress", "--rate", "0"}, tc.args...)...)
		e2eWantCode(t, r, 2)
		if n := strings.Count(r.Stderr, tc.flag); n != 1 {
			t.Errorf("the message names %s %d times, want once:\n%s", tc.flag, n, r.Stderr)
		}
	}
	if n := sb.State(t).Stats.Requests; n != 0 {
		t.Errorf("the refused runs sent %d requests", n)
	}
}
