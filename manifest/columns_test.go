package manifest

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestColumns checks the further columns a caller asks for: found by
// name in any case, missing ones reported, values per row, paths resolved.
func TestColumns(t *testing.T) {
	in := "\uFEFFuser_id,user_created_at,photo,Selfie,liveness\n" +
		"u1,2024-01-01,p1.jpg, s1.jpg ,a.jpg;b.jpg\n" +
		"u2,2024-01-01,p2.jpg\n"
	r, err := NewReader(strings.NewReader(in), "/m")
	if err != nil {
		t.Fatal(err)
	}
	present := r.Columns("selfie", "liveness", "comparison_image")
	if !present[0] || !present[1] || present[2] {
		t.Fatalf("present %v", present)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.Column(0) != "s1.jpg" || r.Column(1) != "a.jpg;b.jpg" || r.Column(2) != "" || r.Column(9) != "" {
		t.Errorf("row 1: %q %q %q", r.Column(0), r.Column(1), r.Column(2))
	}
	if got := r.Resolve("s1.jpg"); got != filepath.Join("/m", "s1.jpg") {
		t.Errorf("Resolve %q", got)
	}
	if got := r.Resolve("s3://b/k.jpg"); got != "s3://b/k.jpg" {
		t.Errorf("Resolve URL %q", got)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.Column(0) != "" || r.Column(1) != "" {
		t.Errorf("row 2 keeps row 1's values: %q %q", r.Column(0), r.Column(1))
	}
}
