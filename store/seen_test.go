package store

import "testing"

func TestSeen(t *testing.T) {
	s, path := openTemp(t)
	if run, line, err := s.SeenAt("u1"); err != nil || run != 0 || line != 0 {
		t.Fatalf("SeenAt on an empty store = %d, %d, %v", run, line, err)
	}
	s.MarkSeen("u1", 3, 7)
	if run, line, err := s.SeenAt("u1"); err != nil || run != 3 || line != 7 {
		t.Fatalf("SeenAt before commit = %d, %d, %v; want 3, 7", run, line, err)
	}
	s.MarkSeen("u2", 1<<40, 1<<33)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if run, line, _ := s.SeenAt("u2"); run != 1<<40 || line != 1<<33 {
		t.Errorf("SeenAt after commit = %d, %d", run, line)
	}
	// The seen list and the records are separate: a user's record is not one.
	if _, found, _ := s.Get("u1"); found {
		t.Error("MarkSeen created a user record")
	}
	s.MarkSeen("u1", 4, 9) // a later run
	closeOK(t, s)

	ro := reopen(t, path, Options{ReadOnly: true})
	if run, line, err := ro.SeenAt("u1"); err != nil || run != 4 || line != 9 {
		t.Errorf("read-only SeenAt after reopening = %d, %d, %v; want 4, 9", run, line, err)
	}
}

func TestDecodeSeenDamaged(t *testing.T) {
	for _, v := range [][]byte{nil, {}, {0x80}, {0x05}, {0x05, 0x80}} {
		if run, line := decodeSeen(v); run != 0 || line != 0 {
			t.Errorf("decodeSeen(%x) = %d, %d; want 0, 0", v, run, line)
		}
	}
}
