//go:build linux

// The SmartSelfie Compare scenario of the performance harness: the
// importer (--product compare) against a bare multipart POST loop, and its
// peak RSS with 64 workers sending 8 liveness frames of 1 MB each.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

const (
	targetCompareRatio = 0.90
	targetCompareRSS   = 100 << 20
	// compareImages is how many images a bench compare row sends: a
	// selfie, a comparison image and 8 liveness frames.
	compareImages = 10
)

// compareManifest writes a compare manifest of rows users named prefix-N;
// row i's images are img(10i) (selfie), img(10i+1) (comparison) and
// img(10i+2) ... img(10i+9) (liveness), names relative to e.dir.
func (e *benchEnv) compareManifest(prefix string, rows int, img func(k int) string) string {
	e.t.Helper()
	return e.writeManifest(prefix, "user_id,selfie,liveness,comparison_image,comparison_image_type", rows, func(w *bufio.Writer, i int) {
		k := i * compareImages
		var live []string
		for j := 2; j < compareImages; j++ {
			live = append(live, img(k+j))
		}
		fmt.Fprintf(w, "%s,%s,%s,%s,ID_PHOTO\n", benchUserID(prefix, i), img(k), strings.Join(live, ";"), img(k+1))
	})
}

// runCompareFloor is the floor of compare: workers goroutines that each
// take the next row, write its ten images into a multipart body with the
// text parts, POST it with the header signature over a shared keep-alive
// client and read the answer. Nothing else.
func (e *benchEnv) runCompareFloor(baseURL, prefix string, rows, workers int, img func(k int) string) floorResult {
	return floorLoop(baseURL+"/v2/smart-selfie-compare", rows, workers, func(i int, body *bytes.Buffer, h http.Header) error {
		user := benchUserID(prefix, i)
		mw := multipart.NewWriter(body)
		mw.WriteField("user_id", user)
		mw.WriteField("partner_params", fmt.Sprintf(`{"job_id":"floor-%s","user_id":"%s"}`, user, user))
		mw.WriteField("comparison_image_type", "ID_PHOTO")
		for j := range compareImages {
			name := "liveness_images"
			switch j {
			case 0:
				name = "selfie_image"
			case 1:
				name = "comparison_image"
			}
			part, _ := mw.CreateFormFile(name, filepath.Base(img(i*compareImages+j)))
			f, err := os.Open(filepath.Join(e.dir, img(i*compareImages+j)))
			if err != nil {
				return err
			}
			_, err = io.Copy(part, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		mw.Close()
		ts := signature.Timestamp(time.Now())
		h.Set("Content-Type", mw.FormDataContentType())
		h.Set("SmileID-Partner-ID", benchPartner)
		h.Set("SmileID-Timestamp", ts)
		h.Set("SmileID-Request-Signature", signature.Sign(benchAPIKey, benchPartner, ts))
		return nil
	})
}

// benchCompare: throughput against the floor with 100 ms answers and 32
// workers (best of 2), then the memory of 64 workers sending 8 liveness
// frames of 1 MB each (and a 1 MB selfie and comparison image).
func benchCompare(t *testing.T, e *benchEnv, rep *benchReport) {
	const latency, workers, rounds = 100 * time.Millisecond, 32, 2
	rows := int(workers / latency.Seconds() * 8)
	name := "compare, latency 100ms, 32 workers"
	var floors, imports []benchLine
	for round := range rounds {
		sb := e.startSandbox(latency)
		f := e.runCompareFloor(sb.url, fmt.Sprintf("cfloor%d", round), rows, workers, photoName)
		fs := sb.stop()
		if f.Err != nil || f.Bad > 0 {
			t.Fatalf("%s: floor: %d answers not 200, error %v", name, f.Bad, f.Err)
		}
		floors = append(floors, benchLine{Scenario: name, What: "floor", Rows: rows, Workers: workers, Wall: f.Wall, CPU: f.CPU, Server: fs})
		prefix := fmt.Sprintf("cmp-imp%d", round)
		m := e.compareManifest(prefix, rows, photoName)
		db := filepath.Join(e.dir, prefix+".db")
		sb = e.startSandbox(latency)
		r := e.runImportWith(m, db, sb.url, workers, "--rate", "0", "--product", "compare")
		is := sb.stop()
		if r.Exit != 0 || r.Sum.Enrolled != rows {
			t.Fatalf("%s: importer: exit %d, enrolled %d of %d: %+v\n%s", name, r.Exit, r.Sum.Enrolled, rows, r.Sum, lastLines(r.Stderr, 20))
		}
		imports = append(imports, benchLine{Scenario: name, What: "importer", Rows: rows, Workers: workers,
			Wall: r.Wall, CPU: r.CPU, Server: is, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize})
		os.Remove(m)
		os.Remove(db)
	}
	bf, bi := floors[0], imports[0]
	for _, l := range floors[1:] {
		if l.Wall < bf.Wall {
			bf = l
		}
	}
	for _, l := range imports[1:] {
		if l.Wall < bi.Wall {
			bi = l
		}
	}
	bf.Ratio, bi.Ratio = 1, bi.rowsPerSec()/bf.rowsPerSec()
	bf.Note = fmt.Sprintf("best of %d; 10 images of %d KiB a row", rounds, e.photoSize>>10)
	bi.Note = bf.Note
	rep.add(bf)
	rep.add(bi)
	rep.target(name+": importer / floor rows per second", fmt.Sprintf("≥ %.2f", targetCompareRatio),
		fmt.Sprintf("%.3f", bi.Ratio), bi.Ratio >= targetCompareRatio)

	// Memory: 64 workers in flight (answers take 300 ms), 10 images of
	// 1 MB a row, from 24 distinct files.
	const memWorkers, memRows = 64, 256
	big := e.bigPhotos(24, 1<<20)
	m := e.compareManifest("cmp-mem", memRows, func(k int) string { return big[k%len(big)] })
	db := filepath.Join(e.dir, "cmp-mem.db")
	sb := e.startSandbox(300 * time.Millisecond)
	r := e.runImportWith(m, db, sb.url, memWorkers, "--rate", "0", "--product", "compare")
	st := sb.fullState(t)
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	if r.Exit != 0 || r.Sum.Enrolled != memRows {
		t.Fatalf("compare memory: exit %d, enrolled %d of %d: %+v\n%s", r.Exit, r.Sum.Enrolled, memRows, r.Sum, lastLines(r.Stderr, 20))
	}
	rep.add(benchLine{Scenario: "compare, 8 x 1 MB liveness, 64 workers", What: "importer", Rows: memRows, Workers: memWorkers,
		Wall: r.Wall, CPU: r.CPU, Server: server, RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize,
		Note: fmt.Sprintf("10 MiB a request; %d requests in flight at most (server); %.0f MB/s of images",
			st.Stats.MaxInFlight, float64(memRows)*compareImages*(1<<20)/1e6/r.Wall.Seconds())})
	rep.target("compare, 64 workers x 8 liveness x 1 MB: peak RSS", "< 100 MiB", mib(r.MaxRSS), r.MaxRSS < targetCompareRSS)
}
