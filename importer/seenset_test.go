package importer

import (
	"fmt"
	"runtime"
	"testing"
)

// TestSeenSet finds every repeated user_id with the line of its first
// occurrence, through the table's growth, and nothing else.
func TestSeenSet(t *testing.T) {
	s := newSeenSet()
	const n = 100_000
	for i := range n {
		if got := s.Seen(fmt.Sprintf("user-%d", i), i+2); got != 0 {
			t.Fatalf("user-%d first read: duplicate of line %d", i, got)
		}
	}
	for i := 0; i < n; i += 7 {
		if got := s.Seen(fmt.Sprintf("user-%d", i), n+i+2); got != i+2 {
			t.Fatalf("user-%d read again: line %d, want %d", i, got, i+2)
		}
	}
	if s.Len() != n {
		t.Errorf("Len %d, want %d", s.Len(), n)
	}
	if per := float64(len(s.keys)*12) / n; per > 21.5 {
		t.Errorf("%.1f bytes a user, want at most 21", per)
	}
	if got := s.Seen("", 5); got != 0 {
		t.Errorf("empty id: %d", got)
	}
	if got := s.Seen("", 9); got != 5 {
		t.Errorf("empty id again: %d, want 5", got)
	}
}

// TestSeenSetCollectsAroundGrowth: a table that grows to collectFrom bytes
// or more grows between two garbage collections (so that one running during
// the copy does not set the heap's goal from both tables); smaller ones
// grow without.
func TestSeenSetCollectsAroundGrowth(t *testing.T) {
	forced := func() uint32 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.NumForcedGC
	}
	fill := func(s *seenSet, n int) (grows int) {
		for i := range n {
			size := len(s.keys)
			s.Seen(fmt.Sprintf("user-%d", i), i+2)
			if len(s.keys) != size {
				grows++
			}
		}
		return grows
	}

	s := newSeenSet()
	if s.collectFrom != collectFrom {
		t.Fatalf("collectFrom %d, want %d", s.collectFrom, collectFrom)
	}
	s.collectFrom = 1 << 30
	before := forced()
	if grows := fill(s, 50_000); grows == 0 {
		t.Fatal("the table never grew")
	}
	if got := forced() - before; got != 0 {
		t.Errorf("tables under collectFrom: %d forced collections, want 0", got)
	}

	s = newSeenSet()
	s.collectFrom = 128 << 10 // 10,923 slots: every growth from the third on
	before = forced()
	grows := fill(s, 50_000)
	big := 0
	for size := 4096; ; {
		size += size / 2
		if size > len(s.keys) {
			break
		}
		if size*slotBytes >= s.collectFrom {
			big++
		}
	}
	if big == 0 || big >= grows {
		t.Fatalf("%d growths, %d of them to collectFrom or more: the test needs some of each", grows, big)
	}
	if got := forced() - before; got != uint32(2*big) {
		t.Errorf("%d forced collections, want 2 for each of the %d growths to collectFrom or more", got, big)
	}
	for i := 0; i < 50_000; i += 11 {
		if got := s.Seen(fmt.Sprintf("user-%d", i), 0); got != i+2 {
			t.Fatalf("user-%d read again: line %d, want %d", i, got, i+2)
		}
	}
}
