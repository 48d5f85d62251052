package manifest

import (
	"bulkenroll/importer/urlref"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzReader(f *testing.F) {
	const h = "user_id,user_created_at,photo\n"
	for _, s := range []string{
		"",
		h,
		h + "u1,2021-08-12,photos/a.jpg\n",
		"\uFEFFphoto,USER_ID, user_created_at ,x\r\np.jpg,u,2021-08-12T15:14:43Z,\r\n",
		h + "\"u,1\",\"2021-08-12\",\"a \"\"b\"\"\nc.jpg\"\n",
		h + "u\"1,d,p\nu2,d,p\n\"u3\"x,d,p\n",
		h + "u1,\"d,p\nu2,d,p\n",
		h + "u1,d\nu2\n,,\nu3,d,p,e,f\n",
		h + "u\xff,d,p\nu\x00,d,p\n",
		h + "\n\n\r\nu1,d,p\r\n",
		h + "u1,d,https://u:p@h/a.jpg?X-Amz-Signature=s&t#f\nu2,2021-08-12T15:14:43,5Z,p\n",
		"a;b;c\n1;2;3\n",
		"\xff\xfeu\x00s\x00",
		"user_id,photo,user_id,user_created_at\n",
		h + strings.Repeat("x", 5000) + ",2021-08-12,p\n",
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.csv"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	v := &Validator{Now: func() time.Time { return fixedNow }}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "base")
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) || he.Reason == "" {
				t.Fatalf("NewReader: %v, want a *HeaderError", err)
			}
			return
		}
		lines := bytes.Count(data, []byte{'\n'}) + 1
		last := 1 // the header is at line 1 or later
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatal("more rows than bytes: the reader does not advance")
			}
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var re *RowError
				if !errors.As(err, &re) || re.Field != FieldRow || re.Reason == "" {
					t.Fatalf("Next: %v, want nil, io.EOF or a row *RowError", err)
				}
			}
			if row.Line <= last || row.Line > lines {
				t.Fatalf("row %d: line %d after line %d (the input has %d lines)", i, row.Line, last, lines)
			}
			last = row.Line
			if (row.Photo == "") != (row.PhotoPath == "") {
				t.Fatalf("line %d: Photo %q but PhotoPath %q", row.Line, row.Photo, row.PhotoPath)
			}
			if again := urlref.Redact(row.Photo); again != row.Photo {
				t.Fatalf("line %d: Photo %q is not redacted (urlref.Redact gives %q)", row.Line, row.Photo, again)
			}
			if err != nil {
				continue
			}
			if err := v.CheckFields(&row); err != nil {
				var re *RowError
				if !errors.As(err, &re) || (re.Field != ColUserID && re.Field != ColCreatedAt) || re.Reason == "" {
					t.Fatalf("CheckFields: %v", err)
				}
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next after the end: %v", err)
		}
	})
}

// createdAtLayouts are the shapes ParseCreatedAt accepts, in time.Parse
// terms: time.Parse serves as an independent oracle.
var createdAtLayouts = []string{
	"2006-01-02",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z0700",
}

func FuzzParseCreatedAt(f *testing.F) {
	for _, s := range []string{
		"2021-08-12", "2021-08-12 15:14:43-0700", "2021-08-12T15:14:43Z",
		"2021-08-12T15:14:43.123+02:00", "2021-08-12T15:14:43+0200", "2021-08-12 15:14:43",
		"2021-08-12T15:14:43.123456789Z", "0000-01-01T00:00:00+18:00", "9999-12-31T23:59:59-18:00",
		"2020-02-29", "2021-02-29", "12/08/2021", "", "2021-08-12T24:00:00Z", "2021-08-12T15:14:43.Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCreatedAt(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("%q: location %v, want UTC", s, got.Location())
		}
		if y := got.Year(); y < -1 || y > 10000 {
			t.Fatalf("%q: year %d", s, y)
		}
		// Whatever parses, time.Parse parses to the same instant.
		matched := false
		for _, layout := range createdAtLayouts {
			if want, err := time.Parse(layout, s); err == nil {
				if !want.Equal(got) {
					t.Fatalf("%q: got %v, time.Parse(%q) gives %v", s, got, layout, want)
				}
				matched = true
				break
			}
		}
		if !matched {
			t.Fatalf("%q parsed to %v, but time.Parse accepts it with no layout", s, got)
		}
		// And it round-trips through its canonical form.
		if y := got.Year(); y >= 0 && y <= 9999 {
			again, err := ParseCreatedAt(got.Format(time.RFC3339Nano))
			if err != nil || !again.Equal(got) {
				t.Fatalf("%q: %v does not round-trip: %v, %v", s, got, again, err)
			}
		}
	})
}
