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
// record, then Put it back with the new run and line.
func BenchmarkSkipRow(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	keys := make([]string, n)
	recs := make([]Record, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08d", i)
		recs[i] = rec(keys[i], Enrolled, i)
	}
	if err := s.PutDurable(keys, recs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, ok, err := s.Get(keys[i%n])
		if !ok || err != nil {
			b.Fatalf("Get: %v %v", ok, err)
		}
		r.Run, r.Line = 8, i
		s.Put(r.UserID, r)
		i++
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
}
