package importer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"bulkenroll/importer"
	"bulkenroll/importer/smileid"
	"bulkenroll/store"
)

// instant is a Submitter that enrolls every user at once, with no network:
// benchmarks of Run then measure the importer's own cost per row.
type instant struct{}

func (instant) Submit(_ context.Context, u smileid.User) (*smileid.Result, error) {
	return &smileid.Result{ResultCode: "0840", ResultText: "Enroll User", SmileJobID: "1000"}, nil
}

// benchManifest writes a manifest of n rows cycling through 100 photos of
// 20 KiB (JPEG magic, then filler) and returns its path.
func benchManifest(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	photo := make([]byte, 20<<10)
	for i := range photo {
		photo[i] = byte(i*7 + i>>8)
	}
	// A JPEG whole in structure, as the importer checks it: SOI, a frame
	// and a scan header, data without markers, EOI.
	for i, b := range photo {
		if b == 0xFF {
			photo[i] = 0
		}
	}
	head := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0}
	copy(photo, head)
	copy(photo[len(photo)-2:], []byte{0xFF, 0xD9})
	for i := range 100 {
		photo[100] = byte(i)
		writeFile(b, filepath.Join(dir, "photos", fmt.Sprintf("p%03d.jpg", i)), photo)
	}
	path := filepath.Join(dir, "manifest.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("user_id,user_created_at,photo\n")
	for i := range n {
		fmt.Fprintf(w, "user-%08d,2021-08-12T15:14:43Z,photos/p%03d.jpg\n", i, i%100)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

func benchRun(b *testing.B, path string, st *store.Store) importer.Summary {
	b.Helper()
	rd := openManifest(b, path)
	sum, err := importer.Run(context.Background(), rd, st, instant{}, importer.Options{Workers: 8, Manifest: path})
	if err != nil {
		b.Fatal(err)
	}
	return sum
}

// BenchmarkRunRow is the importer's own cost per row of an import, with fsync
// on and no network: read and check the row, mark it in a durable batch, read
// and hash the photo, save the result. One op is one row.
func BenchmarkRunRow(b *testing.B) {
	path := benchManifest(b, b.N)
	st := newStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	sum := benchRun(b, path, st)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if sum.Enrolled != b.N {
		b.Fatalf("enrolled %d of %d rows: %+v", sum.Enrolled, b.N, sum)
	}
}

// BenchmarkRerunRow is the cost per row of a run in which every row is
// already enrolled: checked against the store and skipped, photo unread.
func BenchmarkRerunRow(b *testing.B) {
	path := benchManifest(b, b.N)
	st := newStore(b)
	if sum := benchRun(b, path, st); sum.Enrolled != b.N {
		b.Fatalf("first run: %+v", sum)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sum := benchRun(b, path, st)
	b.StopTimer()
	if sum.Skipped != b.N {
		b.Fatalf("skipped %d of %d rows: %+v", sum.Skipped, b.N, sum)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
