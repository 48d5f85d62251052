package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
)

// targetFixPhotosRSS bounds the peak RSS of 32 workers converting 7.8 MB
// BMPs under --fix-photos: the conversion buffers belong to the conversion
// slots (one per CPU), not to the workers (they once held 450 MiB).
const targetFixPhotosRSS = 200 << 20

// benchFixPhotos imports BMPs of 7.8 MB with --fix-photos and 32 workers:
// each is read whole and converted to a JPEG, one per CPU at a time.
func benchFixPhotos(t *testing.T, e *benchEnv, rep *benchReport) {
	const files, rows, workers, w, h = 4, 96, 32, 1620, 1600
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: byte(x / 7), G: byte(y / 7), B: byte(x ^ y), A: 255})
		}
	}
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "bmps"), 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range files {
		name := fmt.Sprintf("bmps/p%d.bmp", i)
		if err := os.WriteFile(filepath.Join(e.dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	m := e.manifestWith("fixbmp", rows, func(i int) string { return names[i%files] })
	db := filepath.Join(e.dir, "fixbmp.db")
	sb := e.startSandbox(0)
	r := e.runImportWith(m, db, sb.url, workers, "--rate", "0", "--fix-photos")
	server := sb.stop()
	os.Remove(m)
	os.Remove(db)
	if r.Exit != 0 || r.Sum.Enrolled != rows {
		t.Fatalf("--fix-photos with BMPs: exit %d, %+v\n%s", r.Exit, r.Sum, lastLines(r.Stderr, 10))
	}
	rep.add(benchLine{Scenario: fmt.Sprintf("--fix-photos, %d workers, BMPs of %.1f MB", workers, float64(b.Len())/1e6),
		What: "importer", Rows: rows, Workers: workers, Wall: r.Wall, CPU: r.CPU, Server: server,
		RSS: r.MaxRSS, Anon: r.PeakAnon, Store: r.StoreSize,
		Note: fmt.Sprintf("%d distinct %dx%d BMPs, cycled, each converted to JPEG", files, w, h)})
	rep.target(fmt.Sprintf("--fix-photos, %d workers converting 7.8 MB BMPs: peak RSS", workers), "< 200 MiB", mib(r.MaxRSS),
		r.MaxRSS < targetFixPhotosRSS)
}
