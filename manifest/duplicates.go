package manifest

import "strings"

// Duplicates remembers the user IDs seen so far, exactly (a map), to find a
// user_id that appears on more than one row. It is not safe for concurrent
// use.
type Duplicates struct {
	first map[string]int
}

// NewDuplicates returns an empty Duplicates.
func NewDuplicates() *Duplicates {
	return &Duplicates{first: make(map[string]int)}
}

// Seen records id at line and returns the line of an earlier occurrence, or 0
// if this is the first. It keeps its own copy of id, so that the record id was
// cut from can be freed.
func (d *Duplicates) Seen(id string, line int) (firstLine int) {
	if l, ok := d.first[id]; ok {
		return l
	}
	d.first[strings.Clone(id)] = line
	return 0
}

// Len returns the number of distinct user IDs seen.
func (d *Duplicates) Len() int { return len(d.first) }
