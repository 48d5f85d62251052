package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkStorePut queues records as a run does and flushes every 256,
// with fsync on: the cost per row of durable group commits.
func BenchmarkStorePut(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{NoSync: false})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%07d", i)
	}
	r := rec("", Enrolled, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.UserID = keys[i%len(keys)]
		s.Put(r.UserID, r)
		i++
		if i%256 == 0 {
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStoreGet reads committed records.
func BenchmarkStoreGet(b *testing.B) {
	s, keys := seededStore(b, 10000, Options{NoSync: true})
	n := len(keys)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.Get(keys[(i*7919)%n]); !ok || err != nil {
			b.Fatalf("Get: %v %v", ok, err)
		}
		i++
	}
}
