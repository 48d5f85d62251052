package urlref

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
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
		got := Redact(tt.in)
		if got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if IsURL(tt.in) {
			for _, secret := range []string{"abcdef0123", "deadbeef", "s3cr3t", "pa55", "t0k", "onlyasecret", "access_token"} {
				if strings.Contains(got, secret) {
					t.Errorf("Redact(%q) = %q keeps %q", tt.in, got, secret)
				}
			}
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.255.0.3": true, "::1": true,
		"": false, "10.0.0.1": false, "example.com": false, "::": false, "0.0.0.0": false, "128.0.0.1": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
