package manifest

import (
	"image"
	_ "image/jpeg" // decoders for image.Decode
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The samples folder at the top of the repository is documentation that must
// stay true: these tests keep it honest.

func TestSamplesValid(t *testing.T) {
	path := filepath.Join("..", "samples", "manifest.csv")
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var v Validator // the real clock: sample dates must stay in the past
	d := NewDuplicates()
	n := 0
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = v.Check(&row)
		}
		if err != nil {
			t.Errorf("line %d: %v", row.Line, err)
			continue
		}
		if first := d.Seen(row.UserID, row.Line); first != 0 {
			t.Errorf("line %d: duplicate of line %d", row.Line, first)
		}
		f, err := os.Open(row.PhotoPath)
		if err != nil {
			t.Fatal(err)
		}
		img, format, err := image.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("line %d: %s does not decode: %v", row.Line, row.PhotoPath, err)
		} else if b := img.Bounds(); b.Dx() < 32 || b.Dy() < 32 || (format != "jpeg" && format != "png") {
			t.Errorf("line %d: %s is a %dx%d %s", row.Line, row.PhotoPath, b.Dx(), b.Dy(), format)
		}
		n++
	}
	if n < 8 {
		t.Errorf("%d sample rows, want at least 8", n)
	}
}

func TestSamplesBad(t *testing.T) {
	got, err := runManifest(t, filepath.Join("..", "samples", "bad", "manifest.csv"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join("..", "samples", "bad")
	want := map[int]string{
		2:  "ok",
		3:  "user_id: missing",
		4:  "user_id: contains a control character (U+0009 at byte 4)",
		5:  "user_id: longer than 128 bytes (130 bytes)",
		6:  `user_created_at: "12/08/2021" is not an ISO 8601 date or date-time`,
		7:  `user_created_at: "2021-02-30" is not a valid date: February 2021 has 28 days`,
		8:  "user_created_at: 2099-01-01 is in the future",
		9:  "photo: file not found: " + filepath.Join(bad, "missing.jpg"),
		10: "photo: is a folder",
		11: "photo: empty file",
		12: `photo: not a JPEG or PNG (content starts with "These ar")`,
		13: "photo: not a JPEG or PNG (content is a GIF image)",
		14: "photo: not a JPEG or PNG (content is a HEIC/HEIF image; convert it to JPEG)",
		15: "dup 2",
		16: "row: bare quote in field (line 16, column 4)",
		17: "row: only 2 fields, so column 3 (photo) is missing",
		18: "photo: missing",
		19: "ok",
	}
	reasons := map[string]int{}
	for line, w := range want {
		g, ok := got[line]
		if !ok || !strings.HasPrefix(g, w) || (w == "ok") != (g == "ok") {
			t.Errorf("line %d: got %q, want %q", line, g, w)
		}
		if w != "ok" {
			if other, dup := reasons[g]; dup {
				t.Errorf("lines %d and %d are refused for the same reason %q", other, line, g)
			}
			reasons[g] = line
		}
	}
	for line, g := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("line %d: unexpected row %q", line, g)
		}
	}
}
