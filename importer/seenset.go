package importer

import (
	"hash/maphash"
	"math"
)

// seenSet finds the user_ids that appear on more than one row of a run, in
// memory and without a write per row: it keeps a 64-bit hash of each user_id
// and the manifest line it was first read at, in an open-addressing table
// (12 bytes a slot, at most three quarters full: 16 to 32 bytes a user,
// about 200 MiB for ten million users, whatever the IDs' length).
//
// Two different user_ids share a hash with odds of about n²/2⁶⁵ for n users
// (1 in 37 million for a million users, 1 in 370,000 for ten million); the
// later row would then be refused as a duplicate, and a later run (with
// another seed) sends it. It is not safe for concurrent use.
type seenSet struct {
	seed  maphash.Seed
	keys  []uint64 // 0: empty slot
	lines []uint32
	n     int
}

// newSeenSet returns an empty set.
func newSeenSet() *seenSet {
	const size = 1 << 12
	return &seenSet{seed: maphash.MakeSeed(), keys: make([]uint64, size), lines: make([]uint32, size)}
}

// Seen records id at line and returns the line of its earlier occurrence,
// or 0 if this is the first.
func (s *seenSet) Seen(id string, line int) (firstLine int) {
	h := maphash.String(s.seed, id)
	if h == 0 {
		h = 1
	}
	mask := uint64(len(s.keys) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.keys[i] {
		case h:
			return int(s.lines[i])
		case 0:
			s.keys[i], s.lines[i] = h, clampLine(line)
			if s.n++; s.n*4 > len(s.keys)*3 {
				s.grow()
			}
			return 0
		}
	}
}

// Len returns the number of distinct user_ids recorded.
func (s *seenSet) Len() int { return s.n }

// grow doubles the table.
func (s *seenSet) grow() {
	keys, lines := s.keys, s.lines
	s.keys, s.lines = make([]uint64, 2*len(keys)), make([]uint32, 2*len(keys))
	mask := uint64(len(s.keys) - 1)
	for j, h := range keys {
		if h == 0 {
			continue
		}
		i := h & mask
		for s.keys[i] != 0 {
			i = (i + 1) & mask
		}
		s.keys[i], s.lines[i] = h, lines[j]
	}
}

// clampLine keeps a line number in 32 bits (a manifest of more than four
// billion lines would name the last one it can).
func clampLine(line int) uint32 {
	if line < 0 {
		return 0
	}
	return uint32(min(line, math.MaxUint32))
}
