package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// seededFile writes a store of n enrolled users (user-00000...) as a run
// does (marks, then results), closes it and returns its path and keys.
func seededFile(t *testing.T, n int) (string, []string) {
	t.Helper()
	s, path := openTemp(t)
	keys := make([]string, n)
	recs := make([]Record, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%05d", i)
		recs[i] = rec(keys[i], Pending, i)
	}
	if err := s.putDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].State = Enrolled
	}
	if err := s.putDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	return path, keys
}

// flipRecord changes, in every copy of key's record in the file (the live
// one and any stale one in a free page), the byte at offset from the
// key's start: inside the key for an offset below len(key), inside the
// value above. A record is found as the key followed by the binary
// format's version byte (a leaf element's key and value are adjacent).
func flipRecord(t *testing.T, path, key string, offset int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needle := append([]byte(key), codecVersion)
	n := 0
	for i := 0; ; {
		j := bytes.Index(data[i:], needle)
		if j < 0 {
			break
		}
		data[i+j+offset] ^= 0x20
		i += j + len(needle)
		n++
	}
	if n == 0 {
		t.Fatalf("no record of %q in %s", key, path)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckFindsDamagedRecords flips a byte in a record's value, or in its
// key: Open (read-only and for writing) refuses the store with a
// *DamagedError naming the user and saying how to go on, the file is left
// byte for byte, and SalvageRecords lists every other record.
func TestCheckFindsDamagedRecords(t *testing.T) {
	const n = 600
	tests := []struct {
		name    string
		offset  int    // from the key's start
		wantKey string // the key the error names
	}{
		{"state byte", len("user-00321") + 2, "user-00321"},
		{"error text", len("user-00321") + 20, "user-00321"},
		{"key", len("user-0032"), "user-0032\x11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, keys := seededFile(t, n)
			flipRecord(t, path, "user-00321", tt.offset)
			before := fileSum(t, path)
			for _, ro := range []bool{true, false} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
					t.Fatalf("Open (read-only %v) of a damaged store: no error", ro)
				}
				var d *DamagedError
				if !errors.As(err, &d) || !errors.Is(err, ErrDamaged) || !errors.Is(err, ErrNotStore) {
					t.Fatalf("Open (read-only %v): %v, want a *DamagedError", ro, err)
				}
				if d.Key != tt.wantKey {
					t.Errorf("Open: names %q, want %q (%v)", d.Key, tt.wantKey, err)
				}
				for _, want := range []string{"report --salvage", "copy it away", "nothing was sent"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Open: %q does not say %q", err, want)
					}
				}
				if fileSum(t, path) != before {
					t.Fatalf("Open (read-only %v) of a damaged store changed the file", ro)
				}
			}
			if err := Check(path); !errors.Is(err, ErrDamaged) {
				t.Errorf("Check: %v, want ErrDamaged", err)
			}
			var got []string
			res, err := SalvageRecords(path, func(r Record) error {
				got = append(got, r.UserID)
				if r.State != Enrolled {
					return fmt.Errorf("salvaged %s in state %q", r.UserID, r.State)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Records != n-1 || len(got) != n-1 || len(res.BadRecords) != 1 || res.BadRecords[0] != tt.wantKey || res.BadPages != 0 {
				t.Errorf("salvage: %d records (%d listed), bad %q, %d bad pages; want %d, [%q], 0",
					res.Records, len(got), res.BadRecords, res.BadPages, n-1, tt.wantKey)
			}
			want := append(append([]string(nil), keys[:321]...), keys[322:]...)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Error("salvage did not list every other record in key order")
			}
			if fileSum(t, path) != before {
				t.Error("salvage changed the file")
			}
		})
	}
}

// TestSalvageDamagedPages zeroes each data page in turn: SalvageRecords
// never panics, lists only intact records, and counts what it could not
// read; together with what it lists, every record is accounted for
// whenever the page held records.
func TestSalvageDamagedPages(t *testing.T) {
	const n = 800
	path, _ := seededFile(t, n)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	var lost int
	for p := 2; p*page < len(orig); p++ {
		data := append([]byte(nil), orig...)
		clear(data[p*page : (p+1)*page])
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		listed := 0
		res, err := SalvageRecords(path, func(r Record) error {
			if r.State != Enrolled || !strings.HasPrefix(r.UserID, "user-") {
				t.Errorf("page %d: salvaged a wrong record %+v", p, r)
			}
			listed++
			return nil
		})
		if err != nil {
			// Only the page that holds the bucket names may lose everything.
			if !errors.Is(err, ErrNotStore) {
				t.Errorf("page %d: %v, want nil or ErrNotStore", p, err)
			}
			continue
		}
		if listed != res.Records {
			t.Errorf("page %d: listed %d, counted %d", p, listed, res.Records)
		}
		if listed < n {
			lost++
			if !res.Unreadable() {
				t.Errorf("page %d: %d of %d records listed, and nothing said unreadable", p, listed, n)
			}
		}
	}
	if lost == 0 {
		t.Error("no zeroed page lost a record; the test no longer covers damaged pages")
	}
}
