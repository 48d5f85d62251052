package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDisplayID(t *testing.T) {
	cases := []struct{ in, want string }{
		{"user-1", "user-1"},
		{"", `""`},
		{"a b", `"a b"`},
		{"tab\there", `"tab\there"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{strings.Repeat("x", 70), strings.Repeat("x", 64) + "…"},
	}
	for _, c := range cases {
		if got := DisplayID(c.in); got != c.want {
			t.Errorf("DisplayID(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestCount(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body string
		want       int
	}{
		{"header only", "user_id,user_created_at,photo\n", 0},
		{"three rows", "user_id,user_created_at,photo\na,2021-08-12,x\nb,2021-08-12,y\nc,2021-08-12,z\n", 3},
		{"quoted newline", "user_id,user_created_at,photo\n\"a\nb\",2021-08-12,x\nc,2021-08-12,y\n", 2},
		{"blank lines and CRLF", "user_id,user_created_at,photo\r\n\r\na,2021-08-12,x\r\n\r\nb,2021-08-12,y\r\n", 2},
		{"empty file", "", 0},
	}
	for i, c := range cases {
		path := filepath.Join(dir, c.name+".csv")
		if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Count(path)
		if err != nil || got != c.want {
			t.Errorf("%d %s: Count = %d, %v; want %d", i, c.name, got, err, c.want)
		}
	}
	if _, err := Count(filepath.Join(dir, "missing.csv")); err == nil {
		t.Error("Count of a missing file: no error")
	}
}
