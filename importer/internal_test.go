package importer

import (
	"bytes"
	"context"
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

func TestGatePause(t *testing.T) {
	g := newGate(0, 4)
	if err := g.wait(context.Background()); err != nil {
		t.Fatalf("wait on an open gate: %v", err)
	}
	start := time.Now()
	g.throttled(150 * time.Millisecond)
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 140*time.Millisecond {
		t.Errorf("wait returned after %v during a 150ms pause", waited)
	}

	// No Retry-After: a one-second pause; a context ending first ends the wait.
	g.throttled(0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait during a pause with a short context = %v", err)
	}
	// A shorter Retry-After does not shorten a longer pause.
	g.throttled(time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := g.wait(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a short Retry-After cut a longer pause: %v", err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := newGate(0, 1).wait(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context = %v", err)
	}
}

func TestGateSlowsDown(t *testing.T) {
	g := newGate(16, 4)
	if g.mode != gateFixed || g.limit != 16 || g.burst != 1 {
		t.Fatalf("limit %v burst %v", g.limit, g.burst)
	}
	for _, want := range []float64{8, 4, 2, 2} { // halves, down to an eighth
		g.throttled(time.Nanosecond)
		if got := g.limit; got != want {
			t.Errorf("limit after a 429 = %v, want %v", got, want)
		}
	}
	// Once the slow period is over, the next wait restores the rate.
	g.mu.Lock()
	g.slowUntil = time.Now().Add(-time.Millisecond)
	g.mu.Unlock()
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := g.limit; got != 16 {
		t.Errorf("limit after the slow period = %v, want 16", got)
	}
	for _, c := range []struct {
		rate          float64
		workers, want int
	}{{10, 4, 1}, {100, 4, 4}, {100, 20, 10}, {0.5, 4, 1}, {1000, 0, 1}} {
		if g := newGate(c.rate, c.workers); int(g.burst) != c.want {
			t.Errorf("burst for rate %v, %d workers = %d, want %d", c.rate, c.workers, int(g.burst), c.want)
		}
	}
}

func TestGateRate(t *testing.T) {
	const rate, n = 100, 30
	g := newGate(rate, 4)
	burst := int(g.burst)
	start := time.Now()
	for range n {
		if err := g.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if min := time.Duration(n-burst) * time.Second / rate; time.Since(start) < min*9/10 {
		t.Errorf("%d waits at %d/s took %v, want at least %v", n, rate, time.Since(start), min)
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
