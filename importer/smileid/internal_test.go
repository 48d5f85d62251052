package smileid

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

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

// TestClientKeepsCheckedConfig checks that NewClient keeps the configuration
// as Check normalized it (the base URL without its trailing slash).
func TestClientKeepsCheckedConfig(t *testing.T) {
	c, err := NewClient(Config{PartnerID: "p", APIKey: "k", BaseURL: "http://127.0.0.1:1/"}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.BaseURL != "http://127.0.0.1:1" || c.cfg.PartnerID != "p" || string(c.cfg.APIKey) != "k" {
		t.Errorf("cfg = %+v", c.cfg)
	}
}
