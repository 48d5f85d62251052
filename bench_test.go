//go:build linux

// The performance harness (make bench): throughput against a floor, memory,
// re-run and validate speed. It builds the binary, generates its own photos
// and manifests in a temporary folder, runs the sandbox emulator as a second
// `bulkenroll sandbox` process on loopback, and writes
// bench-results/BENCHMARKS.md. It runs only with BULKENROLL_BENCH=1.

package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"bulkenroll/store"
)

// The targets the harness asserts.
const (
	targetLoopbackRatio = 0.85
	targetLatencyRatio  = 0.90
	targetRSS40k        = 100 << 20
	targetRSSGrowth     = 8 << 20 // "a few MiB" from 40,000 to 1,000,000 rows, besides the duplicate set
	// targetDupSetPerRow is what a run's duplicate set (importer/seenset.go)
	// may add to the RSS growth per row read: its table (at most 21 bytes a
	// user) and, while it grows, the table it replaces (two thirds of that).
	targetDupSetPerRow = 36
	targetRerun40k     = 3 * time.Second
	targetRerun1M      = 5 * time.Second // every check on: the store's check, each record's checksum
	targetCheck1M      = time.Second     // store.Check of 1,000,000 records
	targetBytesPerRow  = 200             // store file size / rows at 1,000,000 rows
	targetValidate100k = 5 * time.Second
)

// benchLine is one row of the results table.
type benchLine struct {
	Scenario string
	What     string // floor, importer, re-run, validate
	Rows     int
	Workers  int
	Wall     time.Duration
	CPU      time.Duration
	Server   time.Duration // CPU of the sandbox process; 0: not measured
	RSS      int64         // bytes; 0: not measured
	Anon     int64         // peak RssAnon, bytes
	Store    int64         // bytes; 0: no store
	Ratio    float64
	Note     string
}

func (l benchLine) rowsPerSec() float64 { return float64(l.Rows) / l.Wall.Seconds() }

// benchTarget is one target, asserted unless Info.
type benchTarget struct {
	Name, Want, Got string
	OK              bool
	Info            bool // reported, not asserted
}

type benchReport struct {
	t       *testing.T
	lines   []benchLine
	targets []benchTarget
	notes   []string
}

func (r *benchReport) add(l benchLine) {
	r.lines = append(r.lines, l)
	r.t.Logf("%-22s %-9s rows=%-8d wall=%6.2fs rows/s=%8.0f cpu/1k=%.3fs server/1k=%.3fs rss=%s anon=%s store=%s %s",
		l.Scenario, l.What, l.Rows, l.Wall.Seconds(), l.rowsPerSec(), l.CPU.Seconds()*1000/float64(l.Rows),
		l.Server.Seconds()*1000/float64(l.Rows), mib(l.RSS), mib(l.Anon), mib(l.Store), l.Note)
}

func (r *benchReport) target(name, want, got string, ok bool) {
	r.targets = append(r.targets, benchTarget{name, want, got, ok, false})
	if !ok {
		r.t.Errorf("target missed: %s: want %s, got %s", name, want, got)
	}
}

// info reports a figure against a target without asserting it.
func (r *benchReport) info(name, want, got string, ok bool) {
	r.targets = append(r.targets, benchTarget{name, want, got, ok, true})
	if !ok {
		r.t.Logf("information: %s: %s, got %s", name, want, got)
	}
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func TestBenchHarness(t *testing.T) {
	if os.Getenv("BULKENROLL_BENCH") != "1" {
		t.Skip("performance harness: run with BULKENROLL_BENCH=1 (make bench)")
	}
	began := time.Now()
	e := newBenchEnv(t, 20<<10)
	rep := &benchReport{t: t}

	// Size the loopback runs from a short floor run, so each takes about 8
	// seconds whatever the machine (the latency runs take about 12).
	sb := e.startSandbox(0)
	cal := e.runFloor(sb.url, "cal", 3000, 8)
	sb.stop()
	loopRate := float64(cal.Rows) / cal.Wall.Seconds()
	loopRows := clamp(int(loopRate*8), 5_000, 300_000)
	t.Logf("calibration: floor %0.f rows/s on loopback; throughput runs of %d rows", loopRate, loopRows)

	// BULKENROLL_BENCH_ONLY (a comma-separated list of loopback, latency,
	// memory, validate, quota50, quota200, noquota, bigphotos, s3, fixphotos,
	// noise, quota30slow, quota200slow, outage, quotahalves, compare) runs some
	// scenarios only, when working on one.
	only := os.Getenv("BULKENROLL_BENCH_ONLY")
	run := func(name string) bool { return only == "" || slices.Contains(strings.Split(only, ","), name) }
	if run("loopback") {
		benchThroughput(t, e, rep, "loopback, 8 workers", 0, 8, loopRows, 5, targetLoopbackRatio)
	}
	if run("latency") {
		benchThroughput(t, e, rep, "latency 100ms, 32 workers", 100*time.Millisecond, 32,
			int(32/0.1*12), 3, targetLatencyRatio)
	}
	if run("memory") {
		benchMemory(t, e, rep)
	}
	if run("validate") {
		benchValidate(t, e, rep)
	}
	if run("quota50") {
		benchQuota50(t, e, rep)
	}
	if run("quota200") {
		benchQuota200(t, e, rep)
	}
	if run("noquota") {
		benchNoQuota(t, e, rep, loopRate)
	}
	if run("bigphotos") {
		benchBigPhotos(t, e, rep)
	}
	if run("s3") {
		benchS3(t, e, rep)
	}
	if run("fixphotos") {
		benchFixPhotos(t, e, rep)
	}
	// Production conditions (issue 15), default settings: about 7 minutes.
	if run("noise") {
		benchNoise(t, e, rep)
	}
	if run("quota30slow") {
		benchQuota30Slow(t, e, rep)
	}
	if run("quota200slow") {
		benchQuota200Slow(t, e, rep)
	}
	if run("outage") {
		benchOutage(t, e, rep)
	}
	if run("quotahalves") {
		benchQuotaHalves(t, e, rep)
	}
	if run("compare") {
		benchCompare(t, e, rep)
	}
	if only != "" {
		rep.notes = append(rep.notes, "Only the scenarios "+only+" were run (BULKENROLL_BENCH_ONLY).")
	}

	rep.notes = append(rep.notes, fmt.Sprintf("harness wall time %s", time.Since(began).Round(time.Second)))
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if err := os.MkdirAll("bench-results", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("bench-results", "BENCHMARKS.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// benchThroughput runs the floor and the importer (--rate 0) alternately,
// rounds times each, each on a fresh sandbox (and the importer on a fresh
// store), and compares the best of each.
func benchThroughput(t *testing.T, e *benchEnv, rep *benchReport, name string, latency time.Duration, workers, rows, rounds int, want float64) {
	bf, bi := throughputRounds(t, e, name, latency, workers, rows, rounds, "importer", "--rate", "0")
	rep.add(bf)
	rep.add(bi)
	rep.target(fmt.Sprintf("%s: importer / floor rows per second", name), fmt.Sprintf("≥ %.2f", want),
		fmt.Sprintf("%.3f", bi.Ratio), bi.Ratio >= want)
}

// throughputRounds runs the floor and the importer with the flags in args
// alternately, rounds times each, each on a fresh sandbox (and the importer
// on a fresh store), and returns the best of each, the importer's with its
// ratio to the floor's; label names the importer's runs.
func throughputRounds(t *testing.T, e *benchEnv, name string, latency time.Duration, workers, rows, rounds int,
	label string, args ...string) (bf, bi benchLine) {
	slug := benchSlug(name)
	var floors, imports []benchLine
	for round := range rounds {
		sb := e.startSandbox(latency)
		f := e.runFloor(sb.url, fmt.Sprintf("floor%d", round), rows, workers)
		fs := sb.stop()
		if f.Err != nil || f.Bad > 0 {
			t.Fatalf("%s: floor: %d answers not 200, error %v", name, f.Bad, f.Err)
		}
		floors = append(floors, benchLine{Scenario: name, What: "floor", Rows: rows, Workers: workers, Wall: f.Wall, CPU: f.CPU, Server: fs})

		prefix := fmt.Sprintf("%s-imp%d", slug, round)
		m := e.manifest(prefix, rows)
		sb = e.startSandbox(latency)
		r := e.runImportWith(m, filepath.Join(e.dir, prefix+".db"), sb.url, workers, args...)
		is := sb.stop()
		if r.Exit != 0 || r.Sum.Enrolled != rows {
			t.Fatalf("%s: importer: exit %d, enrolled %d of %d rows: %+v\n%s", name, r.Exit, r.Sum.Enrolled, rows, r.Sum,
				lastLines(r.Stderr, 20))
		}
		imports = append(imports, benchLine{Scenario: name, What: label, Rows: rows, Workers: workers,
			Wall: r.Wall, CPU: r.CPU, Server: is, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize})
		os.Remove(m)
		os.Remove(filepath.Join(e.dir, prefix+".db"))
	}
	best := func(ls []benchLine) benchLine {
		return slices.MinFunc(ls, func(a, b benchLine) int { return cmp.Compare(a.Wall, b.Wall) })
	}
	walls := func(ls []benchLine) string {
		var s []string
		for _, l := range ls {
			s = append(s, fmt.Sprintf("%.0f", l.rowsPerSec()))
		}
		return strings.Join(s, ", ")
	}
	bf, bi = best(floors), best(imports)
	bf.Ratio, bi.Ratio = 1, bi.rowsPerSec()/bf.rowsPerSec()
	bf.Note = fmt.Sprintf("best of %d (rows/s: %s)", rounds, walls(floors))
	bi.Note = fmt.Sprintf("best of %d (rows/s: %s)", rounds, walls(imports))
	return bf, bi
}

func benchSlug(name string) string {
	return strings.NewReplacer(" ", "", ",", "-", "/", "-").Replace(name)
}

// benchMemory imports 40,000 rows and then 1,000,000 (or 200,000, with a
// 1,000,000-row re-run on a seeded store, when a full import would take too
// long), and re-runs each.
func benchMemory(t *testing.T, e *benchEnv, rep *benchReport) {
	const small, big, medium = 40_000, 1_000_000, 200_000
	sb := e.startSandbox(0)
	defer sb.stop()

	m40 := e.manifest("mem40k", small)
	st40 := filepath.Join(e.dir, "mem40k.db")
	r := e.runImport(m40, st40, sb.url, 8)
	if r.Sum.Enrolled != small {
		t.Fatalf("40k import: %+v", r.Sum)
	}
	imp40 := benchLine{Scenario: "40,000 rows", What: "importer", Rows: small, Workers: 8, Wall: r.Wall, CPU: r.CPU,
		RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize}
	rep.add(imp40)
	rep.target("40,000-row import: peak RSS", "< 100 MiB", mib(r.MaxRSS), r.MaxRSS < targetRSS40k)

	rr := e.runImport(m40, st40, sb.url, 8)
	if rr.Sum.Skipped != small {
		t.Fatalf("40k re-run: %+v", rr.Sum)
	}
	re40 := benchLine{Scenario: "40,000 rows", What: "re-run", Rows: small, Workers: 8, Wall: rr.Wall, CPU: rr.CPU,
		RSS: rr.MaxRSS, Anon: rr.PeakAnon, Store: rr.StoreSize, Note: "all skipped"}
	rep.add(re40)
	rep.target("re-run of 40,000 enrolled rows", "< 3 s", fmt.Sprintf("%.2f s", rr.Wall.Seconds()), rr.Wall < targetRerun40k)

	// A full 1,000,000-row import if it takes under about 9 minutes at the
	// 40,000-row rate (BULKENROLL_BENCH_FULL=1 forces it, =0 forbids it).
	predicted := time.Duration(float64(r.Wall) * big / small)
	full := predicted < 9*time.Minute
	switch os.Getenv("BULKENROLL_BENCH_FULL") {
	case "1":
		full = true
	case "0":
		full = false
	}
	m1m := e.manifest("mem1m", big)
	st1m := filepath.Join(e.dir, "mem1m.db")
	var impBig benchLine
	if full {
		r := e.runImport(m1m, st1m, sb.url, 8)
		if r.Sum.Enrolled != big {
			t.Fatalf("1M import: %+v", r.Sum)
		}
		impBig = benchLine{Scenario: "1,000,000 rows", What: "importer", Rows: big, Workers: 8, Wall: r.Wall, CPU: r.CPU,
			RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize}
		rep.add(impBig)
	} else {
		m200 := e.manifest("mem200k", medium)
		r := e.runImport(m200, filepath.Join(e.dir, "mem200k.db"), sb.url, 8)
		if r.Sum.Enrolled != medium {
			t.Fatalf("200k import: %+v", r.Sum)
		}
		impBig = benchLine{Scenario: "200,000 rows", What: "importer", Rows: medium, Workers: 8, Wall: r.Wall, CPU: r.CPU,
			RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize,
			Note: fmt.Sprintf("instead of 1,000,000 (predicted %s)", predicted.Round(time.Second))}
		rep.add(impBig)
		os.Remove(filepath.Join(e.dir, "mem200k.db"))
		e.seedStore(st1m, sb.url, "mem1m", big)
		rep.notes = append(rep.notes, "The 1,000,000-row re-run uses a store seeded directly with 1,000,000 enrolled records "+
			"(a full import would have taken about "+predicted.Round(time.Minute).String()+").")
	}
	rep.target(fmt.Sprintf("peak RSS growth, import of 40,000 → %s rows", strings.TrimSuffix(impBig.Scenario, " rows")),
		fmt.Sprintf("≤ %s", mib(rssGrowthAllowed(impBig.Rows-small))), mib(impBig.RSS-imp40.RSS)+fmt.Sprintf(" (%s → %s)", mib(imp40.RSS), mib(impBig.RSS)),
		impBig.RSS-imp40.RSS <= rssGrowthAllowed(impBig.Rows-small))

	benchStoreCheck(t, rep, st1m, big, full)
	rr = e.runImport(m1m, st1m, sb.url, 8)
	if rr.Sum.Skipped != big {
		t.Fatalf("1M re-run: %+v", rr.Sum)
	}
	re1m := benchLine{Scenario: "1,000,000 rows", What: "re-run", Rows: big, Workers: 8, Wall: rr.Wall, CPU: rr.CPU,
		RSS: rr.MaxRSS, Anon: rr.PeakAnon, Store: rr.StoreSize, Note: "all skipped"}
	rep.add(re1m)
	rep.target("re-run of 1,000,000 enrolled rows (store checked, every checksum, nothing written)", fmt.Sprintf("≤ %s", targetRerun1M),
		fmt.Sprintf("%.2f s", rr.Wall.Seconds()), rr.Wall <= targetRerun1M)
	rep.target("peak RSS growth, re-run of 40,000 → 1,000,000 rows", fmt.Sprintf("≤ %s", mib(rssGrowthAllowed(big-small))),
		mib(re1m.RSS-re40.RSS)+fmt.Sprintf(" (%s → %s)", mib(re40.RSS), mib(re1m.RSS)), re1m.RSS-re40.RSS <= rssGrowthAllowed(big-small))
	os.Remove(st1m)
	os.Remove(st40)
}

// rssGrowthAllowed is the peak RSS growth allowed for rows more rows: a
// few MiB, and the duplicate set's bytes a user.
func rssGrowthAllowed(rows int) int64 {
	return targetRSSGrowth + int64(rows)*targetDupSetPerRow
}

// benchStoreCheck measures the check every command makes of an existing
// store (every record's checksum, then bbolt's consistency check) on the
// store of rows records at path, warm, best of three; and the store's bytes
// a row. imported says whether a full import wrote the store (else it was
// seeded in key order, which packs pages fuller than an import does).
func benchStoreCheck(t *testing.T, rep *benchReport, path string, rows int, imported bool) {
	best := time.Duration(1 << 62)
	for range 3 {
		began := time.Now()
		if err := store.Check(path); err != nil {
			t.Fatalf("store check: %v", err)
		}
		best = min(best, time.Since(began))
	}
	rep.target(fmt.Sprintf("store check of %d records (checksums and bbolt's check), warm", rows), fmt.Sprintf("< %s", targetCheck1M),
		fmt.Sprintf("%.2f s", best.Seconds()), best < targetCheck1M)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	perRow := float64(fi.Size()) / float64(rows)
	how := "written by an import"
	if !imported {
		how = "seeded in key order"
	}
	rep.target(fmt.Sprintf("store bytes a row at %d rows (%s)", rows, how), fmt.Sprintf("≤ %d", targetBytesPerRow),
		fmt.Sprintf("%.0f (%s)", perRow, mib(fi.Size())), perRow <= targetBytesPerRow)
}

// benchValidate validates 100,000 rows with distinct photo paths (hard links),
// once to warm the files and once measured.
func benchValidate(t *testing.T, e *benchEnv, rep *benchReport) {
	const rows = 100_000
	m := e.linkedManifest("val100k", rows)
	var p procResult
	for range 2 {
		p = e.runBin(nil, "validate", "--manifest", m)
		if p.Exit != 0 {
			t.Fatalf("validate: exit %d: %s", p.Exit, lastLines(p.Stderr+p.Stdout, 10))
		}
	}
	rep.add(benchLine{Scenario: "100,000 rows", What: "validate", Rows: rows, Wall: p.Wall, CPU: p.CPU,
		RSS: p.MaxRSS, Anon: p.PeakAnon, Note: "warm files, distinct paths"})
	rep.target("validate of 100,000 rows, warm", "< 5 s", fmt.Sprintf("%.2f s", p.Wall.Seconds()), p.Wall < targetValidate100k)
}

// markdown renders the report.
func (r *benchReport) markdown() string {
	var b strings.Builder
	cpuModel, cores := machine()
	fmt.Fprintf(&b, "# bulkenroll benchmarks\n\n")
	fmt.Fprintf(&b, "Machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s, %s.\n\n", cpuModel, cores,
		runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Generated by `make bench` (bench_test.go). Photos of 20 KiB (1,000 distinct files, cycled); "+
		"the sandbox emulator runs as a separate `bulkenroll sandbox` process on loopback, fresh for every "+
		"throughput run; the importer is the real binary with `--rate 0 --no-progress` and a fresh store, "+
		"except where the run column names other rate flags (\"default\": no rate flag, that is `--rate auto "+
		"--max-rate 50`). The quota scenarios run the sandbox with `--quota N --latency 50ms` (a token bucket "+
		"answering 429 with Retry-After above N requests per second): share of the quota is rows/s ÷ N, and "+
		"429s are the sandbox's quota_refused ÷ requests. "+
		"The floor only reads each photo, base64-encodes it, signs and POSTs it with the same number of "+
		"workers, from the test process; floor and importer runs alternate, and the ratio compares the best "+
		"of each. CPU is user + system seconds per 1,000 rows of the client process (server: of the sandbox "+
		"process); peak RSS is the importer's own high-water mark (VmHWM, sampled every 50 ms from /proc: "+
		"ru_maxrss of a child started from Go also counts the peak of the process that started it, here "+
		"the test), anon the peak of its anonymous part (heap and stacks, sampled), the rest being the "+
		"program's own pages and pages of the store file mapped by bbolt.\n\n")
	b.WriteString("| scenario | run | rows | workers | seconds | rows/s | vs floor | CPU s / 1k rows | server CPU s / 1k | peak RSS | peak anon | store | note |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, l := range r.lines {
		ratio := "-"
		if l.Ratio > 0 {
			ratio = fmt.Sprintf("%.3f", l.Ratio)
		}
		workers := "-"
		if l.Workers > 0 {
			workers = fmt.Sprint(l.Workers)
		}
		server := "-"
		if l.Server > 0 {
			server = fmt.Sprintf("%.3f", l.Server.Seconds()*1000/float64(l.Rows))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.2f | %.0f | %s | %.3f | %s | %s | %s | %s | %s |\n",
			l.Scenario, l.What, l.Rows, workers, l.Wall.Seconds(), l.rowsPerSec(), ratio,
			l.CPU.Seconds()*1000/float64(l.Rows), server, mib(l.RSS), mib(l.Anon), mib(l.Store), l.Note)
	}
	b.WriteString("\n| target | want | measured | holds |\n| --- | --- | --- | --- |\n")
	for _, tg := range r.targets {
		ok := "yes"
		switch {
		case !tg.OK && tg.Info:
			ok = "no (information, not asserted)"
		case !tg.OK:
			ok = "**no**"
		case tg.Info:
			ok = "yes (information, not asserted)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", tg.Name, tg.Want, tg.Got, ok)
	}
	if len(r.notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}
