package store

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// TestDamagedDataPage zeroes the pages of a store that holds records but
// keeps its meta pages intact, one page at a time: Open's check must find
// every damage that a read would meet (a *DamagedError, never a panic), and
// a store that opens must read in full.
func TestDamagedDataPage(t *testing.T) {
	s, path := openTemp(t)
	keys := make([]string, 400)
	recs := make([]Record, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%05d", i)
		recs[i] = rec(keys[i], Enrolled, i)
	}
	if err := s.putDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)

	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	var damaged int
	for p := 2; p*page < len(orig); p++ {
		data := append([]byte(nil), orig...)
		clear(data[p*page : (p+1)*page])
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{true, false} {
			st, err := Open(path, Options{ReadOnly: ro})
			if err != nil {
				if !errors.Is(err, ErrNotStore) {
					t.Fatalf("page %d: Open: %v, want ErrNotStore", p, err)
				}
				if got := fileBytes(t, path); string(got) != string(data) {
					t.Fatalf("page %d: a refused Open (read-only %v) changed the file", p, ro)
				}
				if isDamaged(err) {
					damaged++
				}
				continue
			}
			n := 0
			err = st.Each("", func(Record) error { n++; return nil })
			st.Close()
			if err != nil || n != len(keys) {
				t.Errorf("page %d: Open passed, then Each: %d records, %v; want %d, nil", p, n, err, len(keys))
			}
			os.WriteFile(path, data, 0o600) // a writable open may have written
		}
	}
	if damaged == 0 {
		t.Error("no damaged page gave a *DamagedError; the test no longer covers the check")
	}
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
