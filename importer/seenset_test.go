package importer

import (
	"fmt"
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
