package manifest

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"photos/a.jpg", "photos/a.jpg"},
		{"/abs/a b.jpg", "/abs/a b.jpg"},
		{`C:\photos\a.jpg`, `C:\photos\a.jpg`},
		{"photos/a@b.jpg?x=1", "photos/a@b.jpg?x=1"}, // a path, not a URL
		{"https://h.example/p/a.jpg", "https://h.example/p/a.jpg"},
		{"https://bucket.s3.amazonaws.com/p/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abcdef0123",
			"https://bucket.s3.amazonaws.com/p/a.jpg?X-Amz-Algorithm=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{"https://storage.googleapis.com/b/a.jpg?X-Goog-Signature=deadbeef&X-Goog-Expires=900",
			"https://storage.googleapis.com/b/a.jpg?X-Goog-Signature=REDACTED&X-Goog-Expires=REDACTED"},
		{"https://acct.blob.core.windows.net/c/a.jpg?sv=2022&sig=s3cr3t%3D", "https://acct.blob.core.windows.net/c/a.jpg?sv=REDACTED&sig=REDACTED"},
		{"https://user:pa55@h.example:8443/a.jpg?token=t0k", "https://REDACTED@h.example:8443/a.jpg?token=REDACTED"},
		{"HTTPS://h/a.jpg?onlyasecret", "https://h/a.jpg?REDACTED"},
		{"https://h/a.jpg?=v&a=1&a=2&&", "https://h/a.jpg?REDACTED&a=REDACTED"},
		{"https://h/a.jpg#access_token=x", "https://h/a.jpg"},
		{"https://h/a.jpg?", "https://h/a.jpg"},
		{"https://u:p@h", "https://REDACTED@h"},
		{"s3://b/k.jpg?endpoint=http://127.0.0.1:9000&region=x", "s3://b/k.jpg?endpoint=REDACTED&region=REDACTED"},
		{"https://u:p@h/%zz?tok=abc", "https://REDACTED@h/%zz?tok=REDACTED"},
	}
	for _, tt := range tests {
		got := RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if IsURL(tt.in) {
			for _, secret := range []string{"abcdef0123", "deadbeef", "s3cr3t", "pa55", "t0k", "onlyasecret", "access_token"} {
				if strings.Contains(got, secret) {
					t.Errorf("RedactURL(%q) = %q keeps %q", tt.in, got, secret)
				}
			}
		}
	}
}

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
