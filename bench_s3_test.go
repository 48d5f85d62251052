//go:build linux

package main

// The s3 scenario of the performance harness (BULKENROLL_BENCH_ONLY=s3):
// the same rows imported from local files and from an S3-compatible server
// (gofakes3, in-memory, in the test process on loopback), alternately.

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

const (
	targetS3Ratio = 0.80
	benchS3Rows   = 4000
	benchS3Bucket = "bench"
)

// benchS3 starts the S3-compatible server and compares imports from it with
// imports of the same photos from local files, in two settings: against
// the sandbox with 100 ms of latency and 32 workers, as against the real
// API (the target: fetching overlaps sending, so the speed holds), and on
// loopback with 8 workers, where every process competes for the machine's
// two cores (for information: it shows what a GET costs).
func benchS3(t *testing.T, e *benchEnv, rep *benchReport) {
	backend := s3mem.New()
	if err := backend.CreateBucket(benchS3Bucket); err != nil {
		t.Fatal(err)
	}
	for i := range benchPhotos {
		data, err := os.ReadFile(e.photoPath(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := backend.PutObject(benchS3Bucket, photoName(i), map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewUnstartedServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	awsEnv := []string{"AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=bench-secret", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(e.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(e.dir, "no-aws-credentials")}
	benchS3Case(t, e, rep, srv.URL, awsEnv, "s3, latency 100ms, 32 workers", 100*time.Millisecond, 32, 32*10*6, targetS3Ratio)
	benchS3Case(t, e, rep, srv.URL, awsEnv, "s3, loopback, 8 workers", 0, 8, benchS3Rows, 0)
}

// benchS3Case imports rows rows with --rate 0 from local files and from the
// S3-compatible server at endpoint, alternately, three times each, and
// compares the best of each; target 0 reports the ratio for information.
// The server's CPU is the test process's own CPU during the S3 runs (the
// process does nothing else meanwhile).
func benchS3Case(t *testing.T, e *benchEnv, rep *benchReport, endpoint string, awsEnv []string,
	name string, latency time.Duration, workers, rows int, target float64) {
	const rounds = 3
	var locals, remotes []benchLine
	for round := range rounds {
		for _, remote := range []bool{false, true} {
			prefix := fmt.Sprintf("s3-%d-local%d", workers, round)
			if remote {
				prefix = fmt.Sprintf("s3-%d-remote%d", workers, round)
			}
			m := benchS3Manifest(t, e, prefix, rows, remote, endpoint)
			storePath := filepath.Join(e.dir, prefix+".db")
			sb := e.startSandbox(latency)
			cpu0 := selfCPU()
			p := e.runBin(append([]string{"SMILE_BASE_URL=" + sb.url, "BULKENROLL_STORE=" + storePath}, awsEnv...),
				"run", "--manifest", m, "--workers", strconv.Itoa(workers), "--rate", "0", "--no-progress", "--json")
			selfUsed := selfCPU() - cpu0
			sbCPU := sb.stop()
			if p.Exit != 0 || !strings.Contains(p.Stdout, fmt.Sprintf(`"enrolled":%d`, rows)) {
				t.Fatalf("s3 scenario %s: exit %d\n%s\n%s", prefix, p.Exit, p.Stdout, lastLines(p.Stderr, 20))
			}
			l := benchLine{Scenario: name, What: "local files", Rows: rows, Workers: workers,
				Wall: p.Wall, CPU: p.CPU, Server: sbCPU, RSS: p.MaxRSS, Anon: p.PeakAnon}
			if remote {
				l.What = "S3 (gofakes3)"
				l.Note = fmt.Sprintf("gofakes3 CPU %.3f s / 1k rows", selfUsed.Seconds()*1000/float64(rows))
				remotes = append(remotes, l)
			} else {
				locals = append(locals, l)
			}
			os.Remove(m)
			os.Remove(storePath)
		}
	}
	best := func(ls []benchLine) benchLine {
		return slices.MinFunc(ls, func(a, b benchLine) int { return cmp.Compare(a.Wall, b.Wall) })
	}
	rates := func(ls []benchLine) string {
		var s []string
		for _, l := range ls {
			s = append(s, fmt.Sprintf("%.0f", l.rowsPerSec()))
		}
		return strings.Join(s, ", ")
	}
	bl, br := best(locals), best(remotes)
	ratio := br.rowsPerSec() / bl.rowsPerSec()
	bl.Ratio, br.Ratio = 1, ratio
	bl.Note = fmt.Sprintf("best of %d (rows/s: %s)", rounds, rates(locals))
	br.Note = fmt.Sprintf("best of %d (rows/s: %s); %s", rounds, rates(remotes), br.Note)
	rep.add(bl)
	rep.add(br)
	if target == 0 {
		rep.notes = append(rep.notes, fmt.Sprintf("%s: the import from the S3-compatible server ran at %.3f of the local-file speed; "+
			"here the importer, the sandbox and gofakes3 share two cores, so each GET's CPU (the server's and the SDK's) shows directly.", name, ratio))
		return
	}
	rep.notes = append(rep.notes, "In the s3 scenarios the \"vs floor\" column compares with the import from local files, "+
		"and the server CPU column is the sandbox's; gofakes3 runs in the test process, its CPU is in the note.")
	rep.target(name+": import from S3-compatible server, rows/s vs local files", fmt.Sprintf("≥ %.2f", target),
		fmt.Sprintf("%.3f", ratio), ratio >= target)
}

// benchS3Manifest is e.manifest with, if remote, the photos as s3:// URLs
// of the server at endpoint.
func benchS3Manifest(t *testing.T, e *benchEnv, prefix string, rows int, remote bool, endpoint string) string {
	t.Helper()
	if !remote {
		return e.manifest(prefix, rows)
	}
	var b strings.Builder
	b.WriteString("user_id,user_created_at,photo\n")
	q := "?endpoint=" + endpoint + "&use_path_style=true&region=us-east-1"
	for i := range rows {
		fmt.Fprintf(&b, "%s,%s,s3://%s/%s%s\n", benchUserID(prefix, i), benchCreatedAt, benchS3Bucket, photoName(i), q)
	}
	path := filepath.Join(e.dir, prefix+".csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
