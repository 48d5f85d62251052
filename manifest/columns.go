package manifest

import "strings"

// optional holds the further columns a caller of a Reader asked for (with
// Columns) and their values in the last record read.
type optional struct {
	header []string // the header's names
	idx    []int    // the column of each name, -1 when the header has none
	values []string // the last record's values, "" for a missing column
}

// keep copies the asked-for fields of rec (which the CSV reader reuses).
func (o *optional) keep(rec []string) {
	for i, c := range o.idx {
		o.values[i] = ""
		if c >= 0 && c < len(rec) {
			o.values[i] = strings.Clone(strings.TrimSpace(rec[c]))
		}
	}
}

// Columns asks the Reader to keep further columns of each row, by header
// name (matched as the required columns are), and reports which of them
// the header has. After each Next, Column(i) returns the value of the
// i-th of them in that row. Call it before the first Next.
func (r *Reader) Columns(names ...string) (present []bool) {
	r.opt.idx, r.opt.values = make([]int, len(names)), make([]string, len(names))
	present = make([]bool, len(names))
	for i, name := range names {
		r.opt.idx[i] = -1
		for c, h := range r.opt.header {
			if c == 0 {
				h = strings.TrimPrefix(h, utf8BOM)
			}
			if strings.EqualFold(strings.TrimSpace(h), name) {
				r.opt.idx[i], present[i] = c, true
				break
			}
		}
	}
	return present
}

// Column returns the value of the i-th column asked for with Columns in
// the row Next returned last, trimmed ("" when the row or header has none).
func (r *Reader) Column(i int) string {
	if i < 0 || i >= len(r.opt.values) {
		return ""
	}
	return r.opt.values[i]
}

// Resolve returns a path given in the manifest as a photo column would be
// opened: relative to the manifest's folder unless absolute or a URL.
func (r *Reader) Resolve(path string) string { return r.resolve(path) }
