package manifest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchManifest returns an in-memory manifest of n rows.
func benchManifest(n int) []byte {
	var b bytes.Buffer
	b.WriteString("user_id,user_created_at,photo\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "user-%08d,2021-08-12T15:14:43.123Z,photos/user-%08d.jpg\n", i, i)
	}
	return b.Bytes()
}

func BenchmarkReaderNext(b *testing.B) {
	data := benchManifest(100_000)
	b.SetBytes(int64(len(data)) / 100_000)
	b.ReportAllocs()
	r, err := NewReader(bytes.NewReader(data), "base")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := r.Next()
		if err == io.EOF {
			b.StopTimer()
			r, _ = NewReader(bytes.NewReader(data), "base")
			b.StartTimer()
			_, err = r.Next()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkCheckFields(b *testing.B) {
	v := testValidator()
	row := Row{Line: 2, UserID: "user-00000001", CreatedAt: "2021-08-12T15:14:43.123+02:00", Photo: "a.jpg", PhotoPath: "a.jpg"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := v.CheckFields(&row); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPhoto(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.jpg")
	if err := os.WriteFile(path, encodeJPEG(b, 40, 30), 0o644); err != nil { // a real JPEG of about 4 KB
		b.Fatal(err)
	}
	var v Validator
	row := Row{Line: 2, UserID: "u", CreatedAt: "2021-08-12", Photo: "a.jpg", PhotoPath: path}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.CheckPhoto(&row); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadPhoto(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.jpg")
	content := encodeJPEG(b, 200, 150) // a real JPEG of about 100 KB
	if err := os.WriteFile(path, content, 0o644); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := ReadPhoto(path, 0, &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPhotoStreamed is CheckPhoto on a photo too big to be read
// whole by a run (a real JPEG of about 1 MB): the run checks it so before
// streaming it.
func BenchmarkCheckPhotoStreamed(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.jpg")
	content := encodeJPEG(b, 640, 480)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		b.Fatal(err)
	}
	var v Validator
	row := Row{Line: 2, UserID: "u", CreatedAt: "2021-08-12", Photo: "a.jpg", PhotoPath: path}
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.CheckPhoto(&row); err != nil {
			b.Fatal(err)
		}
	}
}
