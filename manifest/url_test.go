package manifest

import (
	"strings"
	"testing"
)

// TestReaderRedactsPhotoURL: a row's Photo (shown, stored, written in the
// rejects file) has the URL's secrets redacted; its PhotoPath (opened) keeps
// them.
func TestReaderRedactsPhotoURL(t *testing.T) {
	const url = "https://u:pw@h.example/a.jpg?X-Amz-Signature=sig123"
	r, err := NewReader(strings.NewReader("user_id,user_created_at,photo\nu1,2021-08-12,"+url+"\n"), "base")
	if err != nil {
		t.Fatal(err)
	}
	row, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://REDACTED@h.example/a.jpg?X-Amz-Signature=REDACTED"; row.Photo != want {
		t.Errorf("Photo %q, want %q", row.Photo, want)
	}
	if row.PhotoPath != url {
		t.Errorf("PhotoPath %q, want %q", row.PhotoPath, url)
	}
}
