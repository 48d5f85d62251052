package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkCheckpoint is the store's cost per row of an import, fsync on:
// the row's "being tried" mark in a durable batch of 64 (PutBatch, waited
// for), then its result queued with Put, as the importer does. One op is
// one row.
func BenchmarkCheckpoint(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 64
	keys := make([]string, batch)
	marks := make([]Record, batch)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		i := n % batch
		keys[i] = fmt.Sprintf("user-%08d", n)
		marks[i] = rec(keys[i], Pending, n)
		if i == batch-1 {
			if err := <-s.PutBatch(keys, marks); err != nil {
				b.Fatal(err)
			}
			for j := range batch {
				s.Put(keys[j], rec(keys[j], Enrolled, n))
			}
		}
		n++
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSkipRow is the store's cost per row of a re-run: Get an enrolled
// record (its checksum verified); nothing is written.
func BenchmarkSkipRow(b *testing.B) {
	s, keys := seededStore(b, 100_000, Options{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		if _, ok, err := s.Get(k); !ok || err != nil {
			b.Fatalf("Get: %v %v", ok, err)
		}
		i++
	}
}

// seededStore opens a store in a temporary folder holding n enrolled users,
// and returns it with their keys; it is closed when the benchmark ends.
func seededStore(b *testing.B, n int, opts Options) (*Store, []string) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	keys := make([]string, n)
	recs := make([]Record, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08d", i)
		recs[i] = rec(keys[i], Enrolled, i)
	}
	if err := s.putDurable(keys, recs); err != nil {
		b.Fatal(err)
	}
	return s, keys
}
