//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCheck1M is the check every command makes of an existing store
// (every record's checksum, then bbolt's consistency check) on a store of
// 1,000,000 enrolled records; it reports the store's bytes a row too. One
// op is one check of the whole store.
func BenchmarkCheck1M(b *testing.B) {
	path := seedMillion(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		if err := Check(path); err != nil {
			b.Fatal(err)
		}
	}
	// On a shared machine the CPU time says more than the wall time.
	b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(fi.Size())/1e6, "bytes/row")
}

// seedMillion writes, in a temporary folder, a store of 1,000,000 enrolled
// records such as an import leaves (one durable batch of marks then the
// results, per 64 rows, as the importer writes them).
func seedMillion(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "1m.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	const batch = 4096
	keys := make([]string, 0, batch)
	recs := make([]Record, 0, batch)
	for i := range 1_000_000 {
		id := fmt.Sprintf("user-%08d", i)
		r := Record{UserID: id, Line: i + 2, CreatedAt: "2021-08-12T15:14:43Z", Photo: fmt.Sprintf("photos/p%04d.jpg", i%1000)}
		r.Mark(1, i+2, r.CreatedAt, r.Photo, now)
		keys, recs = append(keys, id), append(recs, r)
		if len(keys) == batch {
			if err := s.putDurable(keys, recs); err != nil {
				b.Fatal(err)
			}
			for j := range recs {
				recs[j].Enroll("0840", "Enroll User", strconv.Itoa(1_000_000_000+i-batch+j), "", "", now)
			}
			if err := s.putDurable(keys, recs); err != nil {
				b.Fatal(err)
			}
			keys, recs = keys[:0], recs[:0]
		}
	}
	if err := s.putDurable(keys, recs); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
