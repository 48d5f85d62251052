package signature

import (
	"testing"
	"time"
)

func TestSignPublishedVector(t *testing.T) {
	const want = "XxThLHZy2ij1WINkqNEPgzVs9RvUDHWlebDYzprqS74="
	if got := Sign("apiKey", "partner", "2023-02-13T15:07:42.214Z"); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	const ts = "2023-02-13T15:07:42.214Z"
	good := Sign("apiKey", "partner", ts)
	cases := []struct {
		name, key, partner, ts, sig string
		want                        bool
	}{
		{"valid", "apiKey", "partner", ts, good, true},
		{"wrong key", "other", "partner", ts, good, false},
		{"wrong partner", "apiKey", "partner2", ts, good, false},
		{"wrong timestamp", "apiKey", "partner", "2023-02-13T15:07:42.215Z", good, false},
		{"empty signature", "apiKey", "partner", ts, "", false},
		{"not base64", "apiKey", "partner", ts, "%%%", false},
		{"short", "apiKey", "partner", ts, "AAAA", false},
	}
	for _, c := range cases {
		if got := Verify(c.key, c.partner, c.ts, c.sig); got != c.want {
			t.Errorf("%s: Verify = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	loc := time.FixedZone("x", 3*3600)
	in := time.Date(2023, 2, 13, 18, 7, 42, 214_999_999, loc)
	if got, want := Timestamp(in), "2023-02-13T15:07:42.214Z"; got != want {
		t.Fatalf("Timestamp = %q, want %q", got, want)
	}
}
