package manifest

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixedNow is the clock of the tests: dates after it (plus ClockSkew) are in
// the future.
var fixedNow = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

func testValidator() *Validator {
	return &Validator{Now: func() time.Time { return fixedNow }}
}

// outcome runs one row through what `validate` does (the Reader's verdict,
// then the Validator, then the duplicate check) and describes the result as
// "ok", "dup N", or "field: reason".
func outcome(v *Validator, d *Duplicates, row Row, readErr error) string {
	err := readErr
	if err == nil {
		err = v.Check(&row)
	}
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) {
			return "not a RowError: " + err.Error()
		}
		return re.Error()
	}
	if first := d.Seen(row.UserID, row.Line); first != 0 {
		return fmt.Sprintf("dup %d", first)
	}
	return "ok"
}

// runManifest reads a whole manifest and returns the outcome of each line.
func runManifest(t *testing.T, path string) (map[int]string, error) {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	v, d := testValidator(), NewDuplicates()
	got := map[int]string{}
	for {
		row, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		var re *RowError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("Next: unexpected plain error %v", err)
		}
		if _, dup := got[row.Line]; dup {
			t.Fatalf("line %d reported twice", row.Line)
		}
		got[row.Line] = outcome(v, d, row, err)
	}
}

// TestTestdata runs each committed hostile manifest through Reader, Validator
// and Duplicates and checks the exact outcome of every line. An expected
// outcome is "ok", "dup N", or "field: " followed by the start of the reason.
func TestTestdata(t *testing.T) {
	tests := []struct {
		file    string
		header  string // the HeaderError expected, if any
		outcome map[int]string
	}{
		{file: "missing_column.csv", header: `manifest header: missing required column "photo" (the header is "user_id", "user_created_at", "foto")`},
		{file: "duplicate_column.csv", header: `manifest header: column "user_id" appears twice (columns 1 and 3)`},
		{file: "empty.csv", header: "manifest header: the file is empty"},
		{file: "semicolons.csv", header: "fields must be separated by commas"},
		{file: "bom_crlf_reordered.csv", outcome: map[int]string{2: "ok", 3: "ok", 5: "ok"}},
		{file: "ragged.csv", outcome: map[int]string{
			2: "ok",
			3: "row: 5 fields, the header has 3 (is a comma in a value not quoted?)",
			4: "row: only 2 fields, so column 3 (photo) is missing",
			5: "row: only 1 field, so column 2 (user_created_at) is missing",
			6: "ok",
			7: "user_id: missing",
		}},
		{file: "invalid_utf8.csv", outcome: map[int]string{
			2: "row: the user_id field is not valid UTF-8 (byte 0xe9 at byte 2)",
			3: "ok",
			4: "row: the photo field is not valid UTF-8 (byte 0xff at byte 8)",
			5: "ok", // the bad bytes are in a column that is ignored
			6: "ok",
		}},
		{file: "nul.csv", outcome: map[int]string{
			2: "row: the user_id field contains a NUL byte (at byte 2)",
			3: "ok",
			4: "row: the user_created_at field contains a NUL byte (at byte 5)",
			5: "ok", // the NUL bytes are in a column that is ignored
		}},
		{file: "quoted_newlines.csv", outcome: map[int]string{
			2: "ok",
			4: "ok",
			5: "user_id: contains a control character (U+000A at byte 3)",
			7: "ok",
			9: "ok",
		}},
		{file: "bare_quotes.csv", outcome: map[int]string{
			2: "row: bare quote in field (line 2, column 2)",
			3: "ok",
			4: "row: extraneous or missing quote in quoted field (line 4, column 4)",
			5: "ok",
			6: "row: extraneous or missing quote in quoted field (line 7, column 29; the record starts on line 6)",
		}},
		{file: "duplicates.csv", outcome: map[int]string{
			2: "ok",
			3: "ok",
			4: "dup 2",
			5: "dup 3",
			6: "ok",
		}},
		{file: "photos.csv", outcome: map[int]string{
			2:  "ok",
			3:  "ok",
			4:  "ok",
			5:  "ok",
			6:  `photo: not a JPEG or PNG (content starts with "hello, I")`,
			7:  "photo: not a JPEG or PNG (content is a GIF image)",
			8:  "photo: not a JPEG or PNG (content is a HEIC/HEIF image; convert it to JPEG)",
			9:  "photo: empty file",
			10: "photo: is a folder",
			11: "photo: file not found: " + filepath.Join("testdata", "photos", "nope.jpg"),
			12: "photo: missing",
			13: "ok",
		}},
		{file: "fields.csv", outcome: map[int]string{
			2:  `user_created_at: "12/08/2021" is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)`,
			3:  `user_created_at: "2021-02-29" is not a valid date: February 2021 has 28 days`,
			4:  "user_created_at: 2099-01-01 is in the future",
			5:  "user_created_at: missing",
			6:  "user_id: missing",
			7:  "user_id: contains a control character (U+0009 at byte 3)",
			8:  "user_id: longer than 128 bytes (129 bytes)",
			9:  "ok",
			10: "ok",
			11: "ok",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := runManifest(t, filepath.Join("testdata", tt.file))
			if tt.header != "" {
				var he *HeaderError
				if !errors.As(err, &he) {
					t.Fatalf("got error %v, want a *HeaderError", err)
				}
				if !strings.Contains(err.Error(), tt.header) {
					t.Fatalf("got %q, want it to contain %q", err, tt.header)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for line, want := range tt.outcome {
				g, ok := got[line]
				if !ok {
					t.Errorf("line %d: no row, want %q", line, want)
					continue
				}
				if !strings.HasPrefix(g, want) || (want == "ok") != (g == "ok") {
					t.Errorf("line %d: got %q, want %q", line, g, want)
				}
			}
			for line, g := range got {
				if _, ok := tt.outcome[line]; !ok {
					t.Errorf("line %d: unexpected row %q", line, g)
				}
			}
		})
	}
}
