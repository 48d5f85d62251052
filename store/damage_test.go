package store

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// TestDamagedDataPage zeroes the pages of a store that holds records but
// keeps its meta pages intact, so it opens; reading the records must then
// fail with ErrNotStore, never panic.
func TestDamagedDataPage(t *testing.T) {
	s, path := openTemp(t)
	keys := make([]string, 400)
	recs := make([]Record, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%05d", i)
		recs[i] = rec(keys[i], Enrolled, i)
	}
	if err := s.PutDurable(keys, recs); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)

	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	var readErrs int
	// Zero one page at a time (past the two meta pages): whatever opens must
	// then fail its reads with ErrNotStore or read fine (a free page), and
	// never panic.
	for p := 2; p*page < len(orig); p++ {
		data := append([]byte(nil), orig...)
		clear(data[p*page : (p+1)*page])
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ro, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			if !errors.Is(err, ErrNotStore) {
				t.Fatalf("page %d: Open: %v, want ErrNotStore", p, err)
			}
			continue
		}
		err = ro.Each("", func(Record) error { return nil })
		ro.Close()
		switch {
		case errors.Is(err, ErrNotStore):
			readErrs++
		case err != nil:
			t.Errorf("page %d: Each: %v, want nil or ErrNotStore", p, err)
		}
	}
	if readErrs == 0 {
		t.Error("no damaged page was found by a read after a clean open; the test no longer covers reads")
	}
}
