package manifest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"bulkenroll/importer/urlref"
)

// Product names what a manifest's rows are enrolled with, which decides its
// columns.
type Product string

// The products.
const (
	// ProductBackfill (job type 4): user_id, user_created_at, photo.
	ProductBackfill Product = "backfill"
	// ProductCompare (SmartSelfie Compare v2): user_id, selfie, liveness
	// (4 to 8 images, ";"-separated) or liveness_1 ... liveness_8,
	// comparison_image, comparison_image_type.
	ProductCompare Product = "compare"
)

// ParseProduct reads a --product value.
func ParseProduct(s string) (Product, error) {
	switch Product(s) {
	case ProductBackfill, "":
		return ProductBackfill, nil
	case ProductCompare:
		return ProductCompare, nil
	}
	return "", fmt.Errorf("product %q: want backfill or compare", s)
}

// Column names of a compare manifest (user_id is ColUserID). A compare row's
// selfie goes in Row.Photo / Row.PhotoPath, so everything that handles a
// row's photo handles its selfie.
const (
	ColSelfie         = "selfie"
	ColLiveness       = "liveness"
	ColComparison     = "comparison_image"
	ColComparisonType = "comparison_image_type"
)

// Compare's limits: 4 to 8 liveness images, and the comparison image types.
const (
	MinLiveness = 4
	MaxLiveness = 8
)

// ComparisonTypes lists the accepted comparison_image_type values.
var ComparisonTypes = []string{"ID_PHOTO", "PORTRAIT", "DOCUMENT"}

// ImageRef is one image of a compare row: Shown is the column as given
// (trimmed), a URL's secrets redacted; Path is it resolved against the
// manifest's folder, secrets kept: only opened.
type ImageRef struct {
	Shown, Path string
}

// CompareFields are the fields of a compare row besides user_id and the
// selfie (Row.Photo).
type CompareFields struct {
	Comparison     ImageRef
	ComparisonType string
	Liveness       []ImageRef
}

// compareCols are the compare columns of a header.
type compareCols struct {
	comparison, compType int
	liveness             int              // the ";"-separated column, or -1
	numbered             [MaxLiveness]int // liveness_1 ... liveness_8, -1 where absent
}

// colName names column k of Reader.cols.
func (r *Reader) colName(k int) string {
	if r.cmp != nil && k == 2 {
		return ColSelfie
	}
	return required[k]
}

// newCompareReader reads a compare header.
func newCompareReader(cr *csv.Reader, baseDir string, header []string) (*Reader, error) {
	m := &Reader{csv: cr, baseDir: baseDir, cols: [3]int{-1, -1, -1}, width: len(header),
		cmp: &compareCols{comparison: -1, compType: -1, liveness: -1}}
	for i := range m.cmp.numbered {
		m.cmp.numbered[i] = -1
	}
	set := func(at *int, name string, i int) error {
		if *at >= 0 {
			return &HeaderError{Reason: fmt.Sprintf("column %q appears twice (columns %d and %d)", name, *at+1, i+1)}
		}
		*at = i
		return nil
	}
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, utf8BOM)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var err error
		switch name {
		case ColUserID:
			err = set(&m.cols[0], name, i)
		case ColSelfie:
			err = set(&m.cols[2], name, i)
		case ColComparison:
			err = set(&m.cmp.comparison, name, i)
		case ColComparisonType:
			err = set(&m.cmp.compType, name, i)
		case ColLiveness:
			err = set(&m.cmp.liveness, name, i)
		default:
			if n, ok := strings.CutPrefix(name, ColLiveness+"_"); ok {
				if k, e := strconv.Atoi(n); e == nil && k >= 1 && k <= MaxLiveness {
					err = set(&m.cmp.numbered[k-1], name, i)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, c := range []struct {
		at   int
		name string
	}{{m.cols[0], ColUserID}, {m.cols[2], ColSelfie}, {m.cmp.comparison, ColComparison}, {m.cmp.compType, ColComparisonType}} {
		if c.at < 0 {
			missing = append(missing, strconv.Quote(c.name))
		}
	}
	numbered := 0
	for _, c := range m.cmp.numbered {
		if c >= 0 {
			numbered++
		}
	}
	switch {
	case m.cmp.liveness >= 0 && numbered > 0:
		return nil, &HeaderError{Reason: "both a \"liveness\" column and \"liveness_N\" columns: use one or the other"}
	case m.cmp.liveness < 0 && numbered == 0:
		missing = append(missing, `"liveness" (or "liveness_1" ... "liveness_8")`)
	case m.cmp.liveness < 0 && numbered < MinLiveness:
		return nil, &HeaderError{Reason: fmt.Sprintf("%d liveness_N columns; SmartSelfie Compare needs at least %d liveness images", numbered, MinLiveness)}
	}
	if len(missing) > 0 {
		reason := "missing required column " + missing[0]
		if len(missing) > 1 {
			reason = "missing required columns " + strings.Join(missing, ", ")
		}
		return nil, &HeaderError{Reason: reason + " of a compare manifest" + headerHint(header)}
	}
	m.need = max(m.cols[0], m.cols[2]) + 1
	return m, nil
}

// field returns column c of rec trimmed, "" if absent.
func field(rec []string, c int) string {
	if c < 0 || c >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[c])
}

// fill reads the compare fields of rec into row.Compare; a value that is
// not text (NUL, invalid UTF-8) refuses the row.
func (c *compareCols) fill(r *Reader, rec []string, row *Row) error {
	f := &CompareFields{ComparisonType: field(rec, c.compType)}
	ref := func(v string) ImageRef {
		if v == "" {
			return ImageRef{}
		}
		return ImageRef{Shown: urlref.Redact(v), Path: r.resolve(v)}
	}
	for _, col := range []struct {
		at   int
		name string
	}{{c.comparison, ColComparison}, {c.compType, ColComparisonType}, {c.liveness, ColLiveness}} {
		if reason := badText(field(rec, col.at)); reason != "" {
			row.Compare = f
			return rowErr(FieldRow, fmt.Sprintf("the %s field %s", col.name, reason))
		}
	}
	f.Comparison = ref(field(rec, c.comparison))
	if c.liveness >= 0 {
		if v := field(rec, c.liveness); v != "" {
			for _, p := range strings.Split(v, ";") {
				f.Liveness = append(f.Liveness, ref(strings.TrimSpace(p)))
			}
		}
	} else {
		for k, at := range c.numbered {
			v := field(rec, at)
			if reason := badText(v); reason != "" {
				row.Compare = f
				return rowErr(FieldRow, fmt.Sprintf("the liveness_%d field %s", k+1, reason))
			}
			if v != "" {
				f.Liveness = append(f.Liveness, ref(v))
			}
		}
	}
	row.Compare = f
	return nil
}

// Images returns the row's images in the order they are sent: the selfie,
// the comparison image, then the liveness images, each with the field that
// names it in messages (selfie, comparison_image, liveness_1 ...). A
// backfill row has one, its photo.
func (row *Row) Images() []NamedImage {
	if row.Compare == nil {
		return []NamedImage{{Field: ColPhoto, ImageRef: ImageRef{Shown: row.Photo, Path: row.PhotoPath}}}
	}
	out := make([]NamedImage, 0, 2+len(row.Compare.Liveness))
	out = append(out, NamedImage{Field: ColSelfie, ImageRef: ImageRef{Shown: row.Photo, Path: row.PhotoPath}},
		NamedImage{Field: ColComparison, ImageRef: row.Compare.Comparison})
	for i, l := range row.Compare.Liveness {
		out = append(out, NamedImage{Field: fmt.Sprintf("%s_%d", ColLiveness, i+1), ImageRef: l})
	}
	return out
}

// NamedImage is an image of a row with the field that names it.
type NamedImage struct {
	Field string
	ImageRef
}

// checkCompareFields checks a compare row's fields other than its images:
// user_id, comparison_image_type, and the number of liveness images.
func checkCompareFields(row *Row) error {
	if err := checkUserID(row.UserID); err != nil {
		return err
	}
	f := row.Compare
	if f == nil {
		return rowErr(FieldRow, "not a compare row")
	}
	switch {
	case f.ComparisonType == "":
		return rowErr(ColComparisonType, "missing (want ID_PHOTO, PORTRAIT or DOCUMENT)")
	case !isComparisonType(f.ComparisonType):
		return rowErr(ColComparisonType, fmt.Sprintf("%s is not one of ID_PHOTO, PORTRAIT, DOCUMENT", quoteValue(f.ComparisonType)))
	}
	for i, l := range f.Liveness {
		if l.Path == "" {
			return rowErr(ColLiveness, fmt.Sprintf("image %d of %d is empty (a stray \";\"?)", i+1, len(f.Liveness)))
		}
	}
	switch n := len(f.Liveness); {
	case n == 0:
		return rowErr(ColLiveness, fmt.Sprintf("missing: SmartSelfie Compare needs %d to %d liveness images", MinLiveness, MaxLiveness))
	case n < MinLiveness || n > MaxLiveness:
		return rowErr(ColLiveness, fmt.Sprintf("%d images, SmartSelfie Compare needs %d to %d", n, MinLiveness, MaxLiveness))
	}
	return nil
}

func isComparisonType(s string) bool {
	for _, t := range ComparisonTypes {
		if s == t {
			return true
		}
	}
	return false
}

// checkCompareImages checks every image of a compare row as CheckPhoto
// checks a photo; errors name the image's field. It returns the selfie's
// size (-1 if remote).
func (v *Validator) checkCompareImages(row *Row) (int64, error) {
	var selfie int64
	for i, img := range row.Images() {
		size, err := v.checkImage(img.Shown, img.Path)
		if err != nil {
			var re *RowError
			if errors.As(err, &re) {
				return 0, rowErr(img.Field, re.Reason)
			}
			return 0, err
		}
		if i == 0 {
			selfie = size
		}
	}
	return selfie, nil
}

// NewProductReader is NewReader for a manifest of product p. A compare
// manifest's header names user_id, selfie, comparison_image,
// comparison_image_type and either liveness (";"-separated) or liveness_1
// ... liveness_8 (at least 4 of them); its rows carry Row.Compare.
func NewProductReader(r io.Reader, baseDir string, p Product) (*Reader, error) {
	return newProductReader(r, baseDir, maxLineBytes, p)
}
