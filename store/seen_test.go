package store

import "testing"

func TestSeen(t *testing.T) {
	s, path := openTemp(t)
	if line, err := s.SeenAt("u1"); err != nil || line != 0 {
		t.Fatalf("SeenAt on an empty store = %d, %v", line, err)
	}
	s.MarkSeen("u1", 7)
	if line, err := s.SeenAt("u1"); err != nil || line != 7 {
		t.Fatalf("SeenAt before commit = %d, %v; want 7", line, err)
	}
	s.MarkSeen("u2", 1<<40)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if line, _ := s.SeenAt("u2"); line != 1<<40 {
		t.Errorf("SeenAt after commit = %d, want %d", line, 1<<40)
	}
	// The seen list and the records are separate: a user's record is not one.
	if _, found, _ := s.Get("u1"); found {
		t.Error("MarkSeen created a user record")
	}
	closeOK(t, s)

	s = reopen(t, path, Options{})
	if line, _ := s.SeenAt("u1"); line != 7 {
		t.Errorf("SeenAt after reopening = %d, want 7", line)
	}
	if err := s.ResetSeen(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"u1", "u2"} {
		if line, err := s.SeenAt(k); err != nil || line != 0 {
			t.Errorf("SeenAt(%s) after ResetSeen = %d, %v", k, line, err)
		}
	}
	closeOK(t, s)

	ro := reopen(t, path, Options{ReadOnly: true})
	if line, err := ro.SeenAt("u1"); err != nil || line != 0 {
		t.Errorf("read-only SeenAt = %d, %v", line, err)
	}
	ro.Close()
}
