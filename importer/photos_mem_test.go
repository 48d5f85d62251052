package importer_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/image/bmp"

	"bulkenroll/importer/smileid"
)

// TestFixPhotosBuffersBoundedBySlots converts large BMPs with 32 workers
// and two conversion slots: the photos read for conversion are held by the
// slots, not by each worker, so the heap stays far below 32 photos' worth
// (each worker used to keep a buffer as large as the largest photo it had
// converted: 32 x 7.8 MB).
func TestFixPhotosBuffersBoundedBySlots(t *testing.T) {
	if testing.Short() {
		t.Skip("large photos")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // two slots
	const workers, rows, w, h = 32, 48, 1620, 1600  // a 24-bit BMP of 7.8 MB
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: byte(x / 7), G: byte(y / 7), B: 90, A: 255})
		}
	}
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	photo := b.Bytes()
	if len(photo) < 7_500_000 {
		t.Fatalf("BMP of %d bytes", len(photo))
	}
	f := &fixture{dir: t.TempDir()}
	for i := range 4 {
		writeFile(t, filepath.Join(f.dir, "photos", fmt.Sprintf("p%d.bmp", i)), photo)
	}
	for i := range rows {
		f.rows = append(f.rows, mrow{id: fmt.Sprintf("user-%03d", i), created: "2021-08-12", photo: filepath.Join("photos", fmt.Sprintf("p%d.bmp", i%4))})
	}
	path := f.write(t)
	img, b = nil, bytes.Buffer{}
	var mu sync.Mutex
	var peak uint64
	sub := submitFunc(func(ctx context.Context, u smileid.User) (*smileid.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		return &smileid.Result{ResultCode: "0840"}, nil
	})
	opts := fastOptions()
	opts.Workers = workers
	opts.FixPhotos = true
	opts.MaxPhotoBytes = 5 << 20
	sum, err := run(t, context.Background(), path, newStore(t), sub, opts)
	if err != nil || sum.Enrolled != rows {
		t.Fatalf("Run: %v, %+v", err, sum)
	}
	// Per slot: the BMP read (7.8 MB), its decoded image (10.4 MB) and an
	// encoding; per worker, its converted JPEG until it is sent. 32 workers
	// each keeping a 7.8 MB buffer would hold 250 MB on their own.
	const bound = 2*40<<20 + workers*1<<20 + 40<<20
	if peak > bound {
		t.Errorf("heap in use peaked at %.0f MiB with 2 conversion slots, want under %.0f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	}
	t.Logf("heap in use peaked at %.0f MiB", float64(peak)/(1<<20))
}
