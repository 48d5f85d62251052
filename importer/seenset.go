package importer

import (
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
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
	// collectFrom is the size in bytes of a new table from which growing
	// collects garbage before and after (see grow).
	collectFrom int
}

// slotBytes is the size of one slot of the table: a key and a line.
const slotBytes = 12

// collectFrom is seenSet.collectFrom: 4 MiB, reached at about 200,000 users.
const collectFrom = 4 << 20

// newSeenSet returns an empty set.
func newSeenSet() *seenSet {
	const size = 4096
	return &seenSet{seed: maphash.MakeSeed(), keys: make([]uint64, size), lines: make([]uint32, size), collectFrom: collectFrom}
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

// grow makes the table half as large again. A table of collectFrom bytes
// or more grows between two garbage collections: with the default GOGC the
// heap may grow to twice what the last collection found live, and a
// collection that runs while both tables are live (the new table's
// allocation usually starts one) lets the heap reach twice their sum before
// the next, most of it garbage: for a million users, 60 MB of heap instead
// of 42. The collection before the allocation leaves only what is live in
// the heap when the new table joins it; the one after, with the old table
// gone, sets the next goal from the new table alone. Each costs tens of
// milliseconds, a few times per run.
func (s *seenSet) grow() {
	size := len(s.keys) + len(s.keys)/2
	collect := size*slotBytes >= s.collectFrom
	if collect {
		runtime.GC()
	}
	s.rehash(size)
	if collect {
		runtime.GC() // the old table is unreachable once rehash has returned
	}
}

// rehash moves the entries into a new table of size slots.
func (s *seenSet) rehash(size int) {
	keys, lines := s.keys, s.lines
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
