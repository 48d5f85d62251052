package importer

import (
	"hash/maphash"
	"math"
	"math/bits"
)

// seenSet finds the user_ids that appear on more than one row of a run, in
// memory and without a write per row: it keeps a 64-bit hash of each user_id
// and the manifest line it was first read at, in an open-addressing table
// of 12 bytes a slot, grown by half when it is 85 % full: 14 to 21 bytes a
// user whatever the IDs' length (14 to 21 MB for a million users, 140 to
// 210 MB for ten million).
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
	const size = 4096
	return &seenSet{seed: maphash.MakeSeed(), keys: make([]uint64, size), lines: make([]uint32, size)}
}

// home is the slot where hash h's probe starts in a table of size slots.
func home(h uint64, size int) int {
	hi, _ := bits.Mul64(h, uint64(size))
	return int(hi)
}

// Seen records id at line and returns the line of its earlier occurrence,
// or 0 if this is the first.
func (s *seenSet) Seen(id string, line int) (firstLine int) {
	h := maphash.String(s.seed, id)
	if h == 0 {
		h = 1
	}
	for i := home(h, len(s.keys)); ; i++ {
		if i == len(s.keys) {
			i = 0
		}
		switch s.keys[i] {
		case h:
			return int(s.lines[i])
		case 0:
			s.keys[i], s.lines[i] = h, clampLine(line)
			if s.n++; s.n*20 > len(s.keys)*17 {
				s.grow()
			}
			return 0
		}
	}
}

// Len returns the number of distinct user_ids recorded.
func (s *seenSet) Len() int { return s.n }

// grow makes the table half as large again.
func (s *seenSet) grow() {
	keys, lines := s.keys, s.lines
	size := len(keys) + len(keys)/2
	s.keys, s.lines = make([]uint64, size), make([]uint32, size)
	for j, h := range keys {
		if h == 0 {
			continue
		}
		i := home(h, size)
		for s.keys[i] != 0 {
			if i++; i == size {
				i = 0
			}
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
