//go:build linux

// The scenarios of the adaptive rate and of large photos in the performance
// harness (bench_test.go): finding Smile ID's quota (the sandbox's --quota)
// with the default settings, compared with fixed rates; reaching the
// ceiling with no quota; and the importer's memory with 5 MB photos.

package main

import (
	"bytes"
	"cmp"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// The targets of these scenarios.
const (
	targetQuota50Share  = 0.90 // default settings, quota 50/s: rows/s ÷ quota
	targetQuota200Share = 0.85 // --max-rate 250, quota 200/s
	targetQuota429      = 0.05 // share of requests answered 429, at most
	targetNoQuotaAuto   = 0.90 // default settings, no quota: rows/s ÷ min(floor, --max-rate)
	targetNoQuotaHuge   = 0.85 // --max-rate 100000 / floor: information only
	targetBigPhotosRSS  = 100 << 20
	defaultMaxRate      = 50.0 // --max-rate's default
	quotaLatency        = 50 * time.Millisecond
	bigPhotoSize        = 5<<20 - 4096 // just under the 5 MiB limit
	bigPhotoFiles       = 4
	bigPhotoRows        = 256
)

// quotaRun is one importer run of a quota scenario.
type quotaRun struct {
	label string   // the run column
	args  []string // rate flags; none: the default settings
	rows  int      // 0: the scenario's
}

// quotaResult is what one quota run measured.
type quotaResult struct {
	line    benchLine
	share   float64 // enrolled rows per second ÷ quota
	refused float64 // share of the requests answered 429 for the quota
}

var learnedRe = regexp.MustCompile(`learned quota about ([0-9.]+)/s`)

// benchQuota runs the importer once per run in runs, each on a fresh sandbox
// with the quota and a latency of 50 ms and a fresh store, and adds a line
// for each.
func benchQuota(t *testing.T, e *benchEnv, rep *benchReport, name string, quota float64, rows, workers int, runs []quotaRun) []quotaResult {
	slug := benchSlug(name)
	var out []quotaResult
	for i, q := range runs {
		rows := cmp.Or(q.rows, rows)
		prefix := fmt.Sprintf("%s-%d", slug, i)
		m := e.manifest(prefix, rows)
		db := filepath.Join(e.dir, prefix+".db")
		sb := e.startSandbox(quotaLatency, "--quota", strconv.FormatFloat(quota, 'g', -1, 64))
		r := e.runImportWith(m, db, sb.url, workers, q.args...)
		st := sb.state(t)
		server := sb.stop()
		os.Remove(m)
		os.Remove(db)

		res := quotaResult{share: float64(r.Sum.Enrolled) / r.Wall.Seconds() / quota}
		if st.Requests > 0 {
			res.refused = float64(st.QuotaRefused) / float64(st.Requests)
		}
		note := fmt.Sprintf("%.3f of the quota; 429s %.1f %% (%d of %d requests); sandbox accepted at most %d in 1 s",
			res.share, 100*res.refused, st.QuotaRefused, st.Requests, st.MaxAcceptedPerSecond)
		if sub := learnedRe.FindStringSubmatch(r.Stderr); sub != nil {
			note += "; learned " + sub[1] + "/s"
		}
		if r.Exit != 0 || r.Sum.Enrolled != rows {
			note += fmt.Sprintf("; **exit %d: enrolled %d, failed %d, pending %d**", r.Exit, r.Sum.Enrolled, r.Sum.Failed, r.Sum.Pending)
			t.Logf("%s, %s: exit %d\n%s", name, q.label, r.Exit, lastLines(r.Stderr, 12))
		}
		res.line = benchLine{Scenario: name, What: q.label, Rows: rows, Workers: workers, Wall: r.Wall, CPU: r.CPU,
			Server: server, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize, Note: note}
		rep.add(res.line)
		out = append(out, res)
	}
	return out
}

// quotaTargets asserts the share of the quota and of 429s of res.
func quotaTargets(rep *benchReport, what string, res quotaResult, want float64) {
	rep.target(what+": rows/s ÷ quota", fmt.Sprintf("≥ %.2f", want), fmt.Sprintf("%.3f", res.share), res.share >= want)
	rep.target(what+": requests answered 429", fmt.Sprintf("≤ %.0f %%", 100*targetQuota429),
		fmt.Sprintf("%.1f %%", 100*res.refused), res.refused <= targetQuota429)
}

// benchQuota50: a quota of 50/s, found by the default settings, compared
// with an operator who guessed it exactly, the old default and no limit.
func benchQuota50(t *testing.T, e *benchEnv, rep *benchReport) {
	const name, quota, rows, workers, short = "quota 50/s, latency 50ms, 16 workers", 50, 1000, 16, 500
	res := benchQuota(t, e, rep, name, quota, rows, workers, []quotaRun{
		{"importer, default", nil, 0},
		{"importer, --rate 50", []string{"--rate", "50"}, 0},
		{"importer, --rate 10", []string{"--rate", "10"}, short},
		{"importer, --rate 0", []string{"--rate", "0"}, short},
	})
	quotaTargets(rep, "quota 50/s, default settings", res[0], targetQuota50Share)
	rep.notes = append(rep.notes, fmt.Sprintf("Quota 50/s: %d rows for the default settings and `--rate 50`, %d for "+
		"`--rate 10` and `--rate 0`, whose rates are steady from the start, to keep the harness short.", rows, short))
}

// benchQuota200: a quota of 200/s, above the default ceiling of 50/s: an
// operator who knows the quota is above it raises --max-rate.
func benchQuota200(t *testing.T, e *benchEnv, rep *benchReport) {
	const name, quota, rows, workers = "quota 200/s, latency 50ms, 16 workers", 200, 6000, 16
	res := benchQuota(t, e, rep, name, quota, rows, workers, []quotaRun{
		{"importer, --max-rate 250", []string{"--max-rate", "250"}, 0},
	})
	quotaTargets(rep, "quota 200/s, --max-rate 250", res[0], targetQuota200Share)
	rep.notes = append(rep.notes, fmt.Sprintf("Quota 200/s: %d rows (about %.0f s at the quota, so that the climb "+
		"from the first limit of 25/s (a tenth of the ceiling) weighs little), default settings except `--max-rate 250`: the default ceiling "+
		"of 50/s is below this quota, and an operator who knows the quota is above it raises the ceiling "+
		"(16 workers at 50 ms could send up to 320/s).", rows, float64(rows)/quota))
}

// benchNoQuota: no quota, on loopback. The default settings should reach
// their ceiling, min(floor, --max-rate); with the ceiling out of the way
// (--max-rate 100000), the adaptive gate is compared with the floor.
func benchNoQuota(t *testing.T, e *benchEnv, rep *benchReport, loopRate float64) {
	const name, workers, autoRows = "no quota, 8 workers", 8, 1500
	rows := clamp(int(loopRate*4), 5_000, 40_000)
	bf, bi := throughputRounds(t, e, name, 0, workers, rows, 2, "importer, --max-rate 100000", "--max-rate", "100000")
	rep.add(bf)
	rep.add(bi)

	m := e.manifest("noquota-auto", autoRows)
	db := filepath.Join(e.dir, "noquota-auto.db")
	sb := e.startSandbox(0)
	r := e.runImportWith(m, db, sb.url, workers)
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	if r.Exit != 0 || r.Sum.Enrolled != autoRows {
		t.Fatalf("%s: default settings: exit %d, enrolled %d of %d\n%s", name, r.Exit, r.Sum.Enrolled, autoRows, lastLines(r.Stderr, 20))
	}
	ceiling := math.Min(bf.rowsPerSec(), defaultMaxRate)
	line := benchLine{Scenario: name, What: "importer, default", Rows: autoRows, Workers: workers, Wall: r.Wall, CPU: r.CPU,
		Server: server, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize}
	share := line.rowsPerSec() / ceiling
	line.Note = fmt.Sprintf("%.3f of its ceiling min(floor, --max-rate 50) = %.0f/s", share, ceiling)
	rep.add(line)
	rep.target(name+", default settings: rows/s ÷ min(floor, --max-rate)", fmt.Sprintf("≥ %.2f", targetNoQuotaAuto),
		fmt.Sprintf("%.3f (%.1f rows/s of %.0f)", share, line.rowsPerSec(), ceiling), share >= targetNoQuotaAuto)
	rep.info(name+", --max-rate 100000: importer / floor rows per second (the old loopback target)",
		fmt.Sprintf("≥ %.2f", targetNoQuotaHuge), fmt.Sprintf("%.3f", bi.Ratio), bi.Ratio >= targetNoQuotaHuge)
}

// benchBigPhotos imports photos of just under 5 MiB with --rate 0, with 64
// and then 8 workers: the photos are streamed from their file into the
// request, so peak RSS should not grow with workers × photo size.
func benchBigPhotos(t *testing.T, e *benchEnv, rep *benchReport) {
	names := e.bigPhotos(bigPhotoFiles, bigPhotoSize)
	var rss64 int64
	for _, workers := range []int{64, 8} {
		name := fmt.Sprintf("5 MB photos, %d workers", workers)
		prefix := fmt.Sprintf("big%d", workers)
		m := e.manifestWith(prefix, bigPhotoRows, func(i int) string { return names[i%len(names)] })
		db := filepath.Join(e.dir, prefix+".db")
		sb := e.startSandbox(0)
		r := e.runImport(m, db, sb.url, workers)
		server := sb.stop()
		os.Remove(m)
		os.Remove(db)
		if r.Sum.Enrolled != bigPhotoRows {
			t.Fatalf("%s: enrolled %d of %d: %+v", name, r.Sum.Enrolled, bigPhotoRows, r.Sum)
		}
		rep.add(benchLine{Scenario: name, What: "importer", Rows: bigPhotoRows, Workers: workers, Wall: r.Wall, CPU: r.CPU,
			Server: server, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize,
			Note: fmt.Sprintf("%d distinct JPEGs of %d bytes, cycled; %.0f MB/s of photos; ru_maxrss %s (counts the test process)",
				len(names), bigPhotoSize, float64(bigPhotoRows)*bigPhotoSize/1e6/r.Wall.Seconds(), mib(r.RUMaxRSS))})
		if workers == 64 {
			rss64 = r.MaxRSS
		}
	}
	rep.target("64 workers, 5 MB photos: peak RSS", "< 100 MiB", mib(rss64), rss64 < targetBigPhotosRSS)
}

// bigPhotos writes n distinct JPEGs of random noise of exactly size bytes
// (the encoded image padded with comment segments), and returns their names
// relative to e.dir.
func (e *benchEnv) bigPhotos(n, size int) []string {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Join(e.dir, "bigphotos"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	encode := func(side int) []byte {
		img := image.NewYCbCr(image.Rect(0, 0, side, side), image.YCbCrSubsampleRatio444)
		for _, p := range [][]byte{img.Y, img.Cb, img.Cr} {
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
			e.t.Fatal(err)
		}
		return b.Bytes()
	}
	perPixel := float64(len(encode(512))) / (512 * 512)
	side := int(math.Sqrt(0.97 * float64(size) / perPixel))
	var names []string
	for i := range n {
		img := encode(side)
		for len(img) > size-4 {
			side = side * 98 / 100
			img = encode(side)
		}
		out := padJPEG(img, size)
		if i == 0 {
			if _, err := jpeg.Decode(bytes.NewReader(out)); err != nil {
				e.t.Fatalf("generated JPEG does not decode: %v", err)
			}
		}
		name := fmt.Sprintf("bigphotos/b%d.jpg", i)
		if err := os.WriteFile(filepath.Join(e.dir, name), out, 0o644); err != nil {
			e.t.Fatal(err)
		}
		names = append(names, name)
	}
	e.t.Logf("big photos: %d JPEGs of %d×%d pixels, %d bytes each", n, side, side, size)
	return names
}

// padJPEG returns img, a JPEG, grown to size bytes with comment (COM)
// segments after its start marker. size - len(img) must be 0 or at least 4.
func padJPEG(img []byte, size int) []byte {
	pad := size - len(img)
	out := make([]byte, 0, size)
	out = append(out, img[:2]...) // SOI
	for pad > 0 {
		k := min(pad, 0xFFFF+2) // a segment: marker, length (itself included), payload
		if rest := pad - k; rest > 0 && rest < 4 {
			k = pad - 4
		}
		out = append(out, 0xFF, 0xFE, byte((k-2)>>8), byte(k-2))
		out = append(out, bytes.Repeat([]byte{'x'}, k-4)...)
		pad -= k
	}
	return append(out, img[2:]...)
}
