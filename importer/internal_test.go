package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 12 ", 12 * time.Second},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"3600", time.Hour},
		{"99999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
		{now.Add(90 * time.Second).Format(time.ANSIC), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
		{now.Add(5 * time.Hour).Format(http.TimeFormat), time.Hour},
	}
	for _, c := range cases {
		if got := retryAfter(c.in, now); got != c.want {
			t.Errorf("retryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	const base, ceiling = 100 * time.Millisecond, time.Second
	cases := []struct {
		try        int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{0, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 0, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 0, 500 * time.Millisecond, time.Second},
		{30, 0, 500 * time.Millisecond, time.Second},
		{1000, 0, 500 * time.Millisecond, time.Second},
		{0, 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{4, 700 * time.Millisecond, 700 * time.Millisecond, time.Second},
	}
	for _, c := range cases {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(c.try, base, ceiling, c.retryAfter)
			if d < c.lo || d > c.hi {
				t.Fatalf("backoff(%d, retry-after %v) = %v, want %v..%v", c.try, c.retryAfter, d, c.lo, c.hi)
			}
			seen[d] = true
		}
		if c.lo != c.hi && len(seen) < 10 {
			t.Errorf("backoff(%d) took only %d values in 200 draws: no jitter?", c.try, len(seen))
		}
	}
	// A base so large that shifting overflows still gives the ceiling.
	if d := backoff(10, time.Duration(1)<<62, time.Minute, 0); d < 30*time.Second || d > time.Minute {
		t.Errorf("overflowing backoff = %v", d)
	}
}

func TestWriteJSONString(t *testing.T) {
	for _, s := range []string{"", "plain-id_1.2", `q"`, `b\`, "<>&", "\x00\x1f\x7f", "é", "😀", "\u2028\u2029", "\xff\xfe", "a b"} {
		var buf bytes.Buffer
		writeJSONString(&buf, s)
		want, _ := json.Marshal(s)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("writeJSONString(%q) = %s, want %s", s, buf.Bytes(), want)
		}
	}
}

func FuzzWriteJSONString(f *testing.F) {
	for _, s := range []string{"user-1", `a"b`, "\\", "\x00", "é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		writeJSONString(&buf, s)
		var back string
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
			t.Fatalf("%q gave invalid JSON %s: %v", s, buf.Bytes(), err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q came back as %q", s, back)
		}
	})
}

func TestExcerpt(t *testing.T) {
	cases := []struct{ in, want string }{
		{"  <html>\n<body>hi</body>\r\n", "<html> <body>hi</body>"},
		{"a\x00b\x7fc\x1bd", "a?b?c?d"},
		{"ok\xffok", "ok?ok"},
		{"tab\there", "tab here"},
		{"ünï", "ünï"},
	}
	for _, c := range cases {
		if got := excerpt([]byte(c.in), 120); got != c.want {
			t.Errorf("excerpt(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := excerpt([]byte(strings.Repeat("x", 500)), 120); len(got) != 120 {
		t.Errorf("excerpt kept %d bytes, want 120", len(got))
	}
}

func TestAPIErrorMessage(t *testing.T) {
	cases := []struct {
		e    APIError
		want string
	}{
		{APIError{Status: 400, Code: "2213", Text: "Missing parameter"}, "Smile ID 2213: Missing parameter (HTTP 400)"},
		{APIError{Status: 200, Reason: "the answer is not signed"}, "HTTP 200: the answer is not signed"},
		{APIError{Status: 502, Excerpt: "<html>"}, `HTTP 502; body starts "<html>"`},
		{APIError{Status: 500, Text: "Internal Server Error"}, "HTTP 500: Internal Server Error"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
	for _, code := range []string{"2205", "2214", "2220", ""} {
		ae := &AccountError{API: &APIError{Status: 403, Code: code}}
		if !strings.Contains(ae.Error(), AccountAdvice(code)) || !errors.Is(ae, error(ae.API)) {
			t.Errorf("AccountError %q lacks its advice or does not unwrap", ae.Error())
		}
	}
}

// TestBuildBodyReusesBuffer builds bodies of different sizes in one buffer
// and checks each decodes to its own values.
func TestBuildBodyReusesBuffer(t *testing.T) {
	c, err := NewClient(Config{PartnerID: "p", APIKey: "k", BaseURL: "http://127.0.0.1:1"}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i, n := range []int{30000, 10, 0, 5000, 1} {
		photo := bytes.Repeat([]byte{byte(i + 1)}, n)
		id := strings.Repeat(`"<é>`, i*40)
		c.buildBody(&buf, User{UserID: id, CreatedAt: "2021-01-01", Photo: photo})
		var got struct {
			UserID string `json:"user_id"`
			Photo  []byte `json:"photo"`
		}
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if got.UserID != id || !bytes.Equal(got.Photo, photo) {
			t.Errorf("body %d does not carry its own user and photo", i)
		}
	}
}
