package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every row of the manifest in src and returns the rows and, per
// row, the error ("" for none).
func readAll(t *testing.T, src, baseDir string) ([]Row, []string) {
	t.Helper()
	r, err := NewReader(strings.NewReader(src), baseDir)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var rows []Row
	var errs []string
	for i := 0; ; i++ {
		if i > len(src)+1 {
			t.Fatal("more rows than bytes: the reader does not advance")
		}
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		msg := ""
		if err != nil {
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("Next: plain error %v", err)
			}
			msg = re.Error()
		}
		rows = append(rows, row)
		errs = append(errs, msg)
	}
	// io.EOF is sticky.
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the end: %v, want io.EOF", err)
	}
	return rows, errs
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string // "" when the header is fine
		cols    [3]int
	}{
		{name: "plain", src: "user_id,user_created_at,photo\n", cols: [3]int{0, 1, 2}},
		{name: "any order", src: "photo,user_id,user_created_at\n", cols: [3]int{1, 2, 0}},
		{name: "case and spaces", src: " User_ID ,USER_CREATED_AT,\tPhoto \n", cols: [3]int{0, 1, 2}},
		{name: "BOM", src: "\uFEFFuser_id,user_created_at,photo\n", cols: [3]int{0, 1, 2}},
		{name: "BOM before a quoted field", src: "\uFEFF\"user_id\",\"user_created_at\",\"photo\"\n", cols: [3]int{0, 1, 2}},
		{name: "CRLF", src: "user_id,user_created_at,photo\r\nu,2021-08-12,p\r\n", cols: [3]int{0, 1, 2}},
		{name: "extra columns", src: "name,user_id,email,user_created_at,photo,notes\n", cols: [3]int{1, 3, 4}},
		{name: "duplicate extra column", src: "x,user_id,x,user_created_at,photo\n", cols: [3]int{1, 3, 4}},
		{name: "blank lines before", src: "\n\nuser_id,user_created_at,photo\n", cols: [3]int{0, 1, 2}},
		{name: "no newline", src: "user_id,user_created_at,photo", cols: [3]int{0, 1, 2}},
		{name: "empty file", src: "", wantErr: "manifest header: the file is empty"},
		{name: "blank lines only", src: "\n\r\n\n", wantErr: "manifest header: the file is empty"},
		{name: "missing photo", src: "user_id,user_created_at\n", wantErr: `manifest header: missing required column "photo"`},
		{name: "missing two", src: "user_id,foto,created\n", wantErr: `manifest header: missing required columns "user_created_at", "photo" (the header is "user_id", "foto", "created")`},
		{name: "data instead of a header", src: "u1,2021-08-12,photos/a.jpg\n", wantErr: `missing required columns "user_id", "user_created_at", "photo" (the header is "u1", "2021-08-12", "photos/a.jpg")`},
		{name: "duplicate column", src: "user_id,user_created_at,photo,PHOTO\n", wantErr: `manifest header: column "photo" appears twice (columns 3 and 4)`},
		{name: "semicolons", src: "user_id;user_created_at;photo\n", wantErr: "not semicolons or tabs"},
		{name: "tabs", src: "user_id\tuser_created_at\tphoto\n", wantErr: "not semicolons or tabs"},
		{name: "UTF-16", src: "\xff\xfeu\x00s\x00e\x00r\x00\n\x00", wantErr: "UTF-16"},
		{name: "xlsx", src: "PK\x03\x04\x14\x00\x06\x00", wantErr: "Excel"},
		{name: "bare quote", src: "user_id,user\"created_at,photo\n", wantErr: "manifest header: line 1: bare quote in field"},
		{name: "CR line endings", src: "user_id,user_created_at,photo\ru,2021-08-12,p\r", wantErr: "bare carriage return"},
		{name: "long header", src: "a,b,c,d,e,f,g,h\n", wantErr: `(the header is "a", "b", "c", "d", "e", "f", ...)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.src), "")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewReader: %v", err)
				}
				if r.cols != tt.cols {
					t.Fatalf("columns %v, want %v", r.cols, tt.cols)
				}
				return
			}
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want a *HeaderError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRows(t *testing.T) {
	const h = "user_id,user_created_at,photo\n"
	type want struct {
		line            int
		id, date, photo string
		err             string // prefix of the RowError, "" for none
	}
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{
			name: "trimmed fields",
			src:  h + "  u1 , 2021-08-12 ,  photos/a b.jpg  \n",
			want: []want{{line: 2, id: "u1", date: "2021-08-12", photo: "photos/a b.jpg"}},
		},
		{
			name: "quoted commas, quotes and newlines",
			src: h + `"u,1","2021-08-12","photos/a, ""b"".jpg"` + "\n" +
				"\"u\n2\",2021-08-12,p.jpg\n" +
				"u3,2021-08-12,\"multi\r\nline\"\n" +
				"u4,2021-08-12,p.jpg\n",
			want: []want{
				{line: 2, id: "u,1", date: "2021-08-12", photo: `photos/a, "b".jpg`},
				{line: 3, id: "u\n2", date: "2021-08-12", photo: "p.jpg"},
				{line: 5, id: "u3", date: "2021-08-12", photo: "multi\nline"},
				{line: 7, id: "u4", date: "2021-08-12", photo: "p.jpg"},
			},
		},
		{
			name: "blank lines are skipped, line numbers kept",
			src:  h + "\n\nu1,d,p\n\r\n\nu2,d,p",
			want: []want{{line: 4, id: "u1", date: "d", photo: "p"}, {line: 7, id: "u2", date: "d", photo: "p"}},
		},
		{
			name: "ragged rows",
			src:  h + "u1,d,p,extra,more\nu2,d\nu3\nu4,d,p,\n,,\n",
			want: []want{
				{line: 2, id: "u1", date: "d", photo: "p", err: "row: 5 fields, the header has 3 (is a comma in a value not quoted?)"},
				{line: 3, id: "u2", date: "d", err: "row: only 2 fields, so column 3 (photo) is missing"},
				{line: 4, id: "u3", err: "row: only 1 field, so column 2 (user_created_at) is missing"},
				{line: 5, id: "u4", date: "d", photo: "p"},
				{line: 6},
			},
		},
		{
			name: "more fields than the header",
			src:  h + "u1,2021-08-12T15:14:43,5Z,photos/a.jpg\nu2,d,p\nu3,d,p, ,\nu4,\"2021-08-12T15:14:43,5Z\",p\n",
			want: []want{
				{line: 2, id: "u1", date: "2021-08-12T15:14:43", photo: "5Z", err: "row: 4 fields, the header has 3 (is a comma in a value not quoted?)"},
				{line: 3, id: "u2", date: "d", photo: "p"},
				{line: 4, id: "u3", date: "d", photo: "p"}, // empty fields past the header: a trailing comma
				{line: 5, id: "u4", date: "2021-08-12T15:14:43,5Z", photo: "p"},
			},
		},
		{
			name: "bare quotes then recovery",
			src:  h + "u\"1,d,p\nu2,d,p\nu3,d\"x,p\n\"u4\"x,d,p\nu5,d,p\n",
			want: []want{
				{line: 2, err: "row: bare quote in field (line 2, column 2)"},
				{line: 3, id: "u2", date: "d", photo: "p"},
				{line: 4, id: "u3", err: "row: bare quote in field (line 4, column 5)"},
				{line: 5, err: "row: extraneous or missing quote in quoted field (line 5, column 4)"},
				{line: 6, id: "u5", date: "d", photo: "p"},
			},
		},
		{
			name: "unterminated quote swallows the rest",
			src:  h + "u1,d,p\nu2,\"d,p\nu3,d,p\n",
			want: []want{
				{line: 2, id: "u1", date: "d", photo: "p"},
				{line: 3, id: "u2", err: "row: extraneous or missing quote in quoted field (line 4, column 8; the record starts on line 3)"},
			},
		},
		{
			name: "invalid UTF-8 and NUL",
			src:  "user_id,user_created_at,photo,notes\nu\xff,d,p\nu2,d\x00,p\nu3,d,p\xc3\nu4,d,p,\xff\x00\n",
			want: []want{
				{line: 2, id: "u\xff", date: "d", photo: "p", err: "row: the user_id field is not valid UTF-8 (byte 0xff at byte 2); save the manifest as UTF-8"},
				{line: 3, id: "u2", date: "d\x00", photo: "p", err: "row: the user_created_at field contains a NUL byte (at byte 2)"},
				{line: 4, id: "u3", date: "d", photo: "p\xc3", err: "row: the photo field is not valid UTF-8 (byte 0xc3 at byte 2)"},
				{line: 5, id: "u4", date: "d", photo: "p"},
			},
		},
		{
			name: "CRLF",
			src:  "user_id,user_created_at,photo\r\nu1,d,p\r\nu2,d,\"p\r\nq\"\r\nu3,d,p",
			want: []want{
				{line: 2, id: "u1", date: "d", photo: "p"},
				{line: 3, id: "u2", date: "d", photo: "p\nq"},
				{line: 5, id: "u3", date: "d", photo: "p"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, errs := readAll(t, tt.src, "")
			if len(rows) != len(tt.want) {
				t.Fatalf("got %d rows %+v (errors %q), want %d", len(rows), rows, errs, len(tt.want))
			}
			for i, w := range tt.want {
				g := rows[i]
				if g.Line != w.line || g.UserID != w.id || (w.err == "" && (g.CreatedAt != w.date || g.Photo != w.photo)) {
					t.Errorf("row %d: got %+v, want %+v", i, g, w)
				}
				if (w.err == "") != (errs[i] == "") || !strings.HasPrefix(errs[i], w.err) {
					t.Errorf("row %d (line %d): error %q, want %q", i, g.Line, errs[i], w.err)
				}
			}
		})
	}
}

func TestPhotoPath(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "a.jpg")
	tests := []struct {
		base, photo, want string
	}{
		{base: "", photo: "photos/a.jpg", want: "photos/a.jpg"},
		{base: ".", photo: "photos/a.jpg", want: "photos/a.jpg"},
		{base: "samples", photo: "photos/a b.jpg", want: filepath.Join("samples", "photos", "a b.jpg")},
		{base: "samples", photo: "../x.png", want: "x.png"},
		{base: "/data/in", photo: "a.jpg", want: "/data/in/a.jpg"},
		{base: "samples", photo: abs, want: abs},
		{base: "samples", photo: "", want: ""},
		{base: "samples", photo: "s3://bucket/photos/a.jpg?endpoint=http://127.0.0.1:9000", want: "s3://bucket/photos/a.jpg?endpoint=http://127.0.0.1:9000"},
		{base: "/data/in", photo: "gs://bucket/a.jpg", want: "gs://bucket/a.jpg"},
		{base: "/data/in", photo: "azblob://container/a.jpg", want: "azblob://container/a.jpg"},
		{base: "samples", photo: "https://cdn.example.com/a.jpg?sig=x", want: "https://cdn.example.com/a.jpg?sig=x"},
		{base: "samples", photo: "HTTP://127.0.0.1:8080/a.jpg", want: "HTTP://127.0.0.1:8080/a.jpg"},
		{base: "samples", photo: "ftp://host/a.jpg", want: "ftp://host/a.jpg"},
	}
	for _, tt := range tests {
		src := "user_id,user_created_at,photo\nu,d,\"" + tt.photo + "\"\n"
		rows, _ := readAll(t, src, tt.base)
		if len(rows) != 1 || rows[0].PhotoPath != tt.want {
			t.Errorf("base %q, photo %q: got %+v, want PhotoPath %q", tt.base, tt.photo, rows, tt.want)
		}
	}
}

// TestRowStringsSurvive checks that a Row's strings are not overwritten by
// later reads, though the reader reuses its record slice.
func TestRowStringsSurvive(t *testing.T) {
	rows, _ := readAll(t, "user_id,user_created_at,photo\nfirst,2021-01-01,a.jpg\nsecond,2022-02-02,b.jpg\n", "")
	if rows[0].UserID != "first" || rows[0].CreatedAt != "2021-01-01" || rows[0].Photo != "a.jpg" {
		t.Fatalf("first row changed: %+v", rows[0])
	}
}

func TestHugeFields(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	src := "user_id,user_created_at,photo\n" +
		big + ",2021-08-12,a.jpg\n" +
		"u2,2021-08-12," + big + "\n" +
		"u3,\"" + big + "\",a.jpg\n" +
		"u4,2021-08-12,a.jpg\n"
	rows, errs := readAll(t, src, "")
	if len(rows) != 4 || rows[3].UserID != "u4" || rows[3].Line != 5 {
		t.Fatalf("got %d rows, last %+v", len(rows), rows[len(rows)-1].Line)
	}
	for i, e := range errs {
		if e != "" {
			t.Errorf("row %d: reader error %q", i, e)
		}
	}
	v := testValidator()
	for i, want := range []string{
		"user_id: longer than 128 bytes (1048576 bytes)",
		"photo: path longer than 4096 bytes (1048576 bytes)",
		`user_created_at: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... (1048576 bytes) is not an ISO 8601 date`,
	} {
		err := v.Check(&rows[i])
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("row %d: got %v, want %q", i, err, want)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	// The line spans several fills of the read buffer.
	src := "user_id,user_created_at,photo\nu1,d,p\n" + strings.Repeat("y", 300_000) + "\nu3,d,p\n"
	r, err := newReader(strings.NewReader(src), "", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if row, err := r.Next(); err != nil || row.UserID != "u1" {
		t.Fatalf("first row: %+v, %v", row, err)
	}
	_, err = r.Next()
	var re *RowError
	if err == nil || err == io.EOF || errors.As(err, &re) {
		t.Fatalf("got %v, want a plain error", err)
	}
	if !strings.Contains(err.Error(), "line 3 is longer than 100000 bytes") {
		t.Fatalf("got %q", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}
}

func TestLineGuard(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{src: "0123456789\n0123456789\n0123456789"},
		{src: "0123456789\n\n\n"},
		{src: "01234567890\n", wantErr: "line 1 is longer"},
		{src: "0\n1\n01234567890\n", wantErr: "line 3 is longer"},
		{src: "0\n1\n2\n01234567890", wantErr: "line 4 is longer"},
		{src: strings.Repeat("0123456789\n", 100) + "0123456789x\n", wantErr: "line 101 is longer"},
	}
	for _, tt := range tests {
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(tt.src),
			"one byte": iotest.OneByteReader(strings.NewReader(tt.src)),
			"halves":   iotest.HalfReader(strings.NewReader(tt.src)),
		} {
			_, err := io.ReadAll(&lineGuard{r: r, max: 10})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("%q, %s: got %v, want %q", tt.src, name, err, tt.wantErr)
			}
		}
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	src := io.MultiReader(strings.NewReader("user_id,user_created_at,photo\nu1,d,p\n"), iotest.ErrReader(boom))
	r, err := NewReader(src, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the read error", err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("error not sticky: %v", err)
	}
	if _, err := NewReader(iotest.ErrReader(boom), ""); !errors.Is(err, boom) {
		t.Fatalf("NewReader: got %v, want the read error", err)
	}
	// The error may come with the first bytes.
	if _, err := NewReader(iotest.DataErrReader(iotest.OneByteReader(strings.NewReader("user_id,user_created_at,photo\n"))), ""); err != nil {
		t.Fatalf("NewReader, one byte at a time: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.csv")
	if err := os.WriteFile(path, []byte("user_id,user_created_at,photo\nu1,2021-08-12,photos/a.jpg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil || row.PhotoPath != filepath.Join(dir, "photos", "a.jpg") {
		t.Fatalf("got %+v, %v", row, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	if _, err := Open(filepath.Join(dir, "nope.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder: got %v", err)
	}
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("id,date,file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var he *HeaderError
	if _, err := Open(bad); !errors.As(err, &he) || !strings.HasPrefix(err.Error(), bad+": manifest header: missing") {
		t.Errorf("bad header: got %v", err)
	}
}

func TestOpenStdin(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = pr
	t.Cleanup(func() { os.Stdin = old; pr.Close() })
	go func() {
		fmt.Fprint(pw, "user_id,user_created_at,photo\nu1,2021-08-12,photos/a.jpg\n")
		pw.Close()
	}()
	r, err := Open("-")
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil || row.PhotoPath != "photos/a.jpg" || row.Line != 2 {
		t.Fatalf("got %+v, %v", row, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Stat(); err != nil {
		t.Fatalf("Close closed standard input: %v", err)
	}
}

// rowSource generates a manifest of n rows on the fly, so that the test
// itself does not hold the whole file.
type rowSource struct {
	n, next int
	pending []byte
}

func (s *rowSource) Read(p []byte) (int, error) {
	for len(s.pending) < len(p) && s.next <= s.n {
		if s.next == 0 {
			s.pending = append(s.pending, "user_id,user_created_at,photo,notes\n"...)
		} else {
			s.pending = fmt.Appendf(s.pending, "user-%07d,2021-08-12T15:14:43Z,photos/user-%07d.jpg,row %d\n", s.next, s.next, s.next)
		}
		s.next++
	}
	if len(s.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.pending)
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	return n, nil
}

func TestStreamsManyRows(t *testing.T) {
	const n = 200_000
	r, err := NewReader(&rowSource{n: n}, "base")
	if err != nil {
		t.Fatal(err)
	}
	v := testValidator()
	count := 0
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", row.Line, err)
		}
		count++
		if row.Line != count+1 {
			t.Fatalf("row %d has line %d", count, row.Line)
		}
		if err := v.CheckFields(&row); err != nil {
			t.Fatalf("line %d: %v", row.Line, err)
		}
	}
	if count != n {
		t.Fatalf("read %d rows, want %d", count, n)
	}
}
