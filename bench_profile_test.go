//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"bulkenroll/importer"
)

// TestBenchProfile runs one import in this process, against a sandbox
// subprocess, so that `go test -cpuprofile` (or -blockprofile, -memprofile,
// -trace) shows where the importer spends its time. It runs only with
// BULKENROLL_BENCH_PROFILE=1; BULKENROLL_BENCH_ROWS, _WORKERS and _LATENCY
// tune it; BULKENROLL_BENCH_RERUN=1 profiles a re-run (every row skipped)
// after the import, BULKENROLL_BENCH_SEED=1 a re-run on a store seeded with
// every row enrolled, BULKENROLL_BENCH_FLOOR=1 the floor instead, and
// BULKENROLL_BENCH_HEAPAT=D writes heap-during.out D into the measured run. For example:
//
//	BULKENROLL_BENCH_PROFILE=1 go test -run '^TestBenchProfile$' -cpuprofile cpu.out -v .
func TestBenchProfile(t *testing.T) {
	if os.Getenv("BULKENROLL_BENCH_PROFILE") != "1" {
		t.Skip("profiling run: set BULKENROLL_BENCH_PROFILE=1")
	}
	rows := envInt("BULKENROLL_BENCH_ROWS", 20_000)
	workers := envInt("BULKENROLL_BENCH_WORKERS", 8)
	latency, _ := time.ParseDuration(os.Getenv("BULKENROLL_BENCH_LATENCY"))
	e := newBenchEnv(t, 20<<10)
	m := e.manifest("prof", rows)
	sb := e.startSandbox(latency)
	defer sb.stop()
	storePath := filepath.Join(e.dir, "prof.db")
	t.Setenv("SMILE_API_KEY", benchAPIKey)
	t.Setenv("SMILE_API_KEY_FILE", "")
	cred := credentials{PartnerID: benchPartner, Env: "sandbox", BaseURL: sb.url}
	run := func() time.Duration {
		start := time.Now()
		err := runImport(context.Background(), runOptions{
			streams: streams{In: os.Stdin, Out: io.Discard, Err: io.Discard},
			Cred:    cred, StorePath: storePath, Manifest: m, Timeout: time.Minute, NoProgress: true,
			Import: importer.Options{Workers: workers, Retries: 5, MaxPhotoBytes: 5 << 20},
		})
		if err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	// heapAt writes a heap profile BULKENROLL_BENCH_HEAPAT into the
	// measured run: what it holds then.
	heapAt := func() {
		at, err := time.ParseDuration(os.Getenv("BULKENROLL_BENCH_HEAPAT"))
		if err != nil {
			return
		}
		time.AfterFunc(at, func() {
			f, err := os.Create("heap-during.out")
			if err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
				t.Logf("heap profile written %s into the run to heap-during.out", at)
			}
		})
	}
	if os.Getenv("BULKENROLL_BENCH_FLOOR") == "1" {
		// The floor instead, for comparison.
		heapAt()
		f := e.runFloor(sb.url, "prof", rows, workers)
		t.Logf("floor of %d rows with %d workers: %s, %.0f rows/s", rows, workers, f.Wall, float64(rows)/f.Wall.Seconds())
		return
	}
	if os.Getenv("BULKENROLL_BENCH_SEED") == "1" {
		// A re-run on a store seeded directly with every row enrolled.
		e.seedStore(storePath, sb.url, "prof", rows)
		heapAt()
		t.Logf("re-run on a seeded store: %s", run())
		return
	}
	if os.Getenv("BULKENROLL_BENCH_RERUN") == "1" {
		// Enroll first, unprofiled in spirit (the profile covers both; the
		// log says how long each took).
		t.Logf("import: %s", run())
		heapAt()
		t.Logf("re-run: %s", run())
		return
	}
	heapAt()
	d := run()
	t.Logf("import of %d rows with %d workers: %s, %.0f rows/s", rows, workers, d, float64(rows)/d.Seconds())
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
