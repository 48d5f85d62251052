package smileid_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/smileid/sandbox"
	"bulkenroll/importer/smileid/signature"
	"bulkenroll/importer/testkit"
)

// captured is one request as a test server received it.
type captured struct {
	method, path string
	header       http.Header
	body         []byte
}

// captureServer answers every request with answer(body) after recording it.
func captureServer(t *testing.T, answer func(w http.ResponseWriter, body []byte)) (*httptest.Server, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server reading the body: %v", err)
		}
		mu.Lock()
		got = append(got, captured{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		mu.Unlock()
		answer(w, body)
	}))
	t.Cleanup(hs.Close)
	return hs, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

// TestSubmitPublishedVector checks the request the client really sends
// against Smile ID's published signature vector.
func TestSubmitPublishedVector(t *testing.T) {
	const (
		partner = "partner"
		key     = "apiKey"
		ts      = "2023-02-13T15:07:42.214Z"
		wantSig = "XxThLHZy2ij1WINkqNEPgzVs9RvUDHWlebDYzprqS74="
	)
	// The clock is in another zone, with a sub-millisecond remainder: the
	// client must send UTC with exactly three decimals.
	clock := time.Date(2023, 2, 13, 20, 37, 42, 214_900_000, time.FixedZone("IST", 5*3600+1800))
	photo := testkit.Photo(t, "jpeg", 1)
	hs, got := captureServer(t, func(w http.ResponseWriter, body []byte) {
		io.WriteString(w, testkit.SignedSuccess(key, partner, testkit.UserIDOf(body)))
	})
	c := testkit.NewClient(t, hs.URL+"/gw/", func(cfg *smileid.Config, o *smileid.ClientOptions) {
		cfg.PartnerID, cfg.APIKey = partner, key
		o.Now = func() time.Time { return clock }
		o.UserAgent = "bulkenroll-test/1"
	})
	const createdAt = "2021-08-12 15:14:43-0700" // sent exactly as given
	res, err := c.Submit(context.Background(), smileid.User{UserID: "user-1", CreatedAt: createdAt, Photo: photo})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if res.ResultCode != "0840" || res.SmileJobID != "0000001234" || res.ResultText != "Enroll User" {
		t.Errorf("result = %+v", res)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/gw/v1/backfill_users" {
		t.Errorf("request %s %s, want POST /gw/v1/backfill_users", r.method, r.path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if ua := r.header.Get("User-Agent"); ua != "bulkenroll-test/1" {
		t.Errorf("User-Agent %q", ua)
	}
	if cl := r.header.Get("Content-Length"); cl != fmt.Sprint(len(r.body)) {
		t.Errorf("Content-Length %q for a body of %d bytes", cl, len(r.body))
	}
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	want := map[string]any{
		"partner_id":      partner,
		"timestamp":       ts,
		"signature":       wantSig,
		"user_id":         "user-1",
		"user_created_at": createdAt,
		"photo":           base64.StdEncoding.EncodeToString(photo),
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, fields[k], v)
		}
	}
	if len(fields) != len(want) {
		t.Errorf("body has fields %v, want exactly %v", slices.Sorted(maps.Keys(fields)), slices.Sorted(maps.Keys(want)))
	}
	p, _ := fields["photo"].(string)
	if strings.HasPrefix(p, "data:") {
		t.Errorf("photo has a data: prefix")
	}
	if dec, err := base64.StdEncoding.DecodeString(p); err != nil || !bytes.Equal(dec, photo) {
		t.Errorf("photo does not decode to the file's bytes (%v)", err)
	}
}

// TestSubmitFreshTimestamp checks the timestamp form and signature with the
// real clock.
func TestSubmitFreshTimestamp(t *testing.T) {
	hs, got := captureServer(t, func(w http.ResponseWriter, body []byte) {
		io.WriteString(w, testkit.SignedSuccess(testkit.APIKey, testkit.Partner, testkit.UserIDOf(body)))
	})
	c := testkit.NewClient(t, hs.URL, nil)
	for i := range 2 {
		if _, err := c.Submit(context.Background(), smileid.User{UserID: fmt.Sprint("u", i), CreatedAt: "2021-01-01", Photo: testkit.Photo(t, "png", i)}); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	layout := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	for _, r := range got() {
		var f struct {
			PartnerID string `json:"partner_id"`
			Timestamp string `json:"timestamp"`
			Signature string `json:"signature"`
		}
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatal(err)
		}
		if !layout.MatchString(f.Timestamp) {
			t.Errorf("timestamp %q is not 2006-01-02T15:04:05.000Z", f.Timestamp)
		}
		ts, err := time.Parse(signature.TimestampLayout, f.Timestamp)
		if err != nil || time.Since(ts).Abs() > time.Hour {
			t.Errorf("timestamp %q is not the current time (%v)", f.Timestamp, err)
		}
		if f.PartnerID != testkit.Partner || !signature.Verify(testkit.APIKey, testkit.Partner, f.Timestamp, f.Signature) {
			t.Errorf("signature %q does not verify for %q + %q", f.Signature, f.Timestamp, f.PartnerID)
		}
	}
}

func TestSubmitEscapesJSON(t *testing.T) {
	ids := []string{
		`quote"inside`, `back\slash`, `<script>&amp;</script>`, "héllo-ünïcödé", "tab\there",
		"nul\x00byte", "emoji-😀", "line\u2028sep", "ctl\x1f\x7f", "/slash/", "  spaced  ",
	}
	hs, got := captureServer(t, func(w http.ResponseWriter, body []byte) {
		io.WriteString(w, testkit.SignedSuccess(testkit.APIKey, `odd"partner\`, testkit.UserIDOf(body)))
	})
	c := testkit.NewClient(t, hs.URL, func(cfg *smileid.Config, _ *smileid.ClientOptions) { cfg.PartnerID = `odd"partner\` })
	for _, id := range ids {
		created := `2021-08-12T15:14:43.123+02:00 "q"`
		if _, err := c.Submit(context.Background(), smileid.User{UserID: id, CreatedAt: created, Photo: []byte{0xFF, 0xD8, 0xFF, 0}}); err != nil {
			t.Errorf("Submit(%q): %v", id, err)
		}
	}
	reqs := got()
	if len(reqs) != len(ids) {
		t.Fatalf("%d requests, want %d", len(reqs), len(ids))
	}
	for i, r := range reqs {
		if !json.Valid(r.body) {
			t.Errorf("body for %q is not valid JSON: %s", ids[i], r.body)
			continue
		}
		var f map[string]string
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatal(err)
		}
		if f["user_id"] != ids[i] {
			t.Errorf("user_id = %q, want %q", f["user_id"], ids[i])
		}
		if f["user_created_at"] != `2021-08-12T15:14:43.123+02:00 "q"` {
			t.Errorf("user_created_at = %q", f["user_created_at"])
		}
		if f["partner_id"] != `odd"partner\` || !signature.Verify(testkit.APIKey, f["partner_id"], f["timestamp"], f["signature"]) {
			t.Errorf("partner_id %q / signature wrong", f["partner_id"])
		}
	}
}

// TestSubmitSandbox runs the client against the emulator, which checks
// bodies and signatures like the API.
func TestSubmitSandbox(t *testing.T) {
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	c := testkit.NewClient(t, hs.URL, nil)
	u := smileid.User{UserID: "sb-1", CreatedAt: "2021-08-12", Photo: testkit.Photo(t, "jpeg", 3)}
	res, err := c.Submit(context.Background(), u)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if res.ResultCode != "0840" || res.SmileJobID == "" {
		t.Errorf("result %+v", res)
	}
	_, err = c.Submit(context.Background(), u)
	ae := testkit.MustAs[*smileid.APIError](t, err)
	if ae.Code != "2209" || smileid.Classify(err) != smileid.AlreadyEnrolled {
		t.Errorf("second Submit: %v (class %v), want 2209 already enrolled", err, smileid.Classify(err))
	}
	if n := sb.Enrolled()["sb-1"]; n != 1 {
		t.Errorf("sandbox enrolled sb-1 %d times", n)
	}

	// Wrong key: the sandbox answers 2205, an account-level refusal.
	bad := testkit.NewClient(t, hs.URL, func(cfg *smileid.Config, _ *smileid.ClientOptions) { cfg.APIKey = "wrong-" + testkit.APIKey })
	_, err = bad.Submit(context.Background(), smileid.User{UserID: "sb-2", CreatedAt: "2021-08-12", Photo: u.Photo})
	ae = testkit.MustAs[*smileid.APIError](t, err)
	if ae.Code != "2205" || ae.Status != http.StatusUnauthorized || smileid.Classify(err) != smileid.Account {
		t.Errorf("wrong key: %v (class %v)", err, smileid.Classify(err))
	}
}

// TestSubmitConcurrent sends from many goroutines at once, half of them
// answered early without the server reading the body, so that the client's
// pooled buffers are reused while other requests are in flight.
func TestSubmitConcurrent(t *testing.T) {
	sb, _, hs := testkit.NewSandbox(t, sandbox.Options{})
	var early atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if early.Add(1)%2 == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, `{"code":"2213","error":"too large"}`)
			return
		}
		proxyTo(t, hs.URL, w, r)
	}))
	t.Cleanup(front.Close)
	c := testkit.NewClient(t, front.URL, nil)
	big := append(testkit.Photo(t, "jpeg", 9), bytes.Repeat([]byte{0xAB}, 256<<10)...)
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			photo := testkit.Photo(t, "png", i)
			if i%3 == 0 {
				photo = big
			}
			_, err := c.Submit(context.Background(), smileid.User{UserID: fmt.Sprintf("c-%02d", i), CreatedAt: "2021-08-12", Photo: photo})
			switch {
			case err == nil:
				ok.Add(1)
			case smileid.Classify(err) == smileid.Permanent:
				refused.Add(1)
			default:
				t.Errorf("Submit c-%02d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load()+refused.Load() != 40 || ok.Load() == 0 {
		t.Errorf("%d enrolled, %d refused early; want 40 in all", ok.Load(), refused.Load())
	}
	if got := len(sb.Enrolled()); int64(got) != ok.Load() {
		t.Errorf("sandbox enrolled %d users, client saw %d successes", got, ok.Load())
	}
	if st := sb.Stats(); st.Rejected != 0 || st.Unauthorized != 0 {
		t.Errorf("sandbox refused requests (a reused buffer corrupted a body?): %+v", st)
	}
}

// proxyTo forwards r to base and copies the answer back.
func proxyTo(t *testing.T, base string, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	resp, err := http.Post(base+r.URL.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Errorf("proxy: %v", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// answer builds a handler that writes status, headers and body.
func answer(status int, body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hijack builds a handler that reads the request, writes raw (maybe
// nothing) on the bare connection, and closes it, with a reset if rst.
func hijack(raw string, rst bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if raw != "" {
			buf.WriteString(raw)
			buf.Flush()
		}
		if tc, ok := conn.(*net.TCPConn); ok && rst {
			tc.SetLinger(0)
		}
		conn.Close()
	}
}

// submitTo sends one user to a server running h and returns the error.
func submitTo(t *testing.T, h http.Handler, mod func(*smileid.Config, *smileid.ClientOptions)) error {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	c := testkit.NewClient(t, hs.URL, mod)
	_, err := c.Submit(context.Background(), smileid.User{UserID: "user-1", CreatedAt: "2021-08-12", Photo: testkit.Photo(t, "jpeg", 1)})
	return err
}

func TestAnswerVerification(t *testing.T) {
	ts := signature.Timestamp(time.Now())
	sign := func(key, partner string) string { return signature.Sign(key, partner, ts) }
	cases := []struct {
		name    string
		h       http.Handler
		ok      bool
		status  int
		reason  string // substring of APIError.Reason
		excerpt string // substring of APIError.Excerpt
		code    string
		class   smileid.Class
	}{
		{name: "valid signed success", ok: true, h: answer(200, testkit.SignedSuccess(testkit.APIKey, testkit.Partner, "user-1"))},
		{name: "valid without PartnerParams", ok: true, h: answer(200, fmt.Sprintf(`{"ResultCode":"0840","SmileJobID":"7","timestamp":%q,"signature":%q}`, ts, sign(testkit.APIKey, testkit.Partner)))},
		{name: "unsigned success", status: 200, reason: "not signed", class: smileid.Transient,
			h: answer(200, `{"ResultCode":"0840","ResultText":"Enroll User","SmileJobID":"1","PartnerParams":{"user_id":"user-1"}}`)},
		{name: "timestamp without signature", status: 200, reason: "not signed", class: smileid.Transient,
			h: answer(200, fmt.Sprintf(`{"ResultCode":"0840","SmileJobID":"1","timestamp":%q}`, ts))},
		{name: "forged signature (another key)", status: 200, reason: "does not verify", class: smileid.Transient,
			h: answer(200, testkit.SignedSuccess("not-the-key", testkit.Partner, "user-1"))},
		{name: "signature for another partner", status: 200, reason: "does not verify", class: smileid.Transient,
			h: answer(200, testkit.SignedSuccess(testkit.APIKey, "partner-78", "user-1"))},
		{name: "signature not base64", status: 200, reason: "does not verify", class: smileid.Transient,
			h: answer(200, fmt.Sprintf(`{"ResultCode":"0840","timestamp":%q,"signature":"!!!"}`, ts))},
		{name: "signature of another timestamp", status: 200, reason: "does not verify", class: smileid.Transient,
			h: answer(200, fmt.Sprintf(`{"ResultCode":"0840","timestamp":"2020-01-01T00:00:00.000Z","signature":%q}`, sign(testkit.APIKey, testkit.Partner)))},
		{name: "HTML page with 200", status: 200, reason: "not Smile ID JSON", excerpt: "<html><head><title>Captive portal", class: smileid.Foreign,
			h: answer(200, "<html><head><title>Captive portal</title></head>\n<body>log in</body></html>", "Content-Type", "text/html")},
		{name: "truncated JSON", status: 200, reason: "not Smile ID JSON", excerpt: `{"ResultCode":"0840","Smile`, class: smileid.Foreign,
			h: answer(200, `{"ResultCode":"0840","Smile`)},
		{name: "non-JSON 502", status: 502, excerpt: "Bad gateway from nginx", class: smileid.Transient,
			h: answer(502, "<html>Bad gateway from nginx</html>")},
		{name: "wrong user_id in answer (a replayed answer)", status: 200, reason: `"user-2"`, class: smileid.Foreign,
			h: answer(200, testkit.SignedSuccess(testkit.APIKey, testkit.Partner, "user-2"))},
		{name: "signed unexpected result code", status: 200, reason: "unexpected result code", code: "0841", class: smileid.Transient,
			h: answer(200, fmt.Sprintf(`{"ResultCode":"0841","ResultText":"Hmm","timestamp":%q,"signature":%q}`, ts, sign(testkit.APIKey, testkit.Partner)))},
		{name: "error body with status 200", status: 200, code: "2209", class: smileid.AlreadyEnrolled,
			h: answer(200, `{"code":"2209","error":"User already enrolled"}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := httptest.NewServer(c.h)
			defer hs.Close()
			cl := testkit.NewClient(t, hs.URL, nil)
			res, err := cl.Submit(context.Background(), smileid.User{UserID: "user-1", CreatedAt: "2021-08-12", Photo: []byte{0xFF, 0xD8, 0xFF}})
			if c.ok {
				if err != nil || res == nil || res.ResultCode != "0840" {
					t.Fatalf("Submit = %+v, %v; want a success", res, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Submit accepted the answer: %+v", res)
			}
			ae := testkit.MustAs[*smileid.APIError](t, err)
			if ae.Status != c.status {
				t.Errorf("Status = %d, want %d", ae.Status, c.status)
			}
			if !strings.Contains(ae.Reason, c.reason) {
				t.Errorf("Reason = %q, want it to contain %q", ae.Reason, c.reason)
			}
			if !strings.Contains(ae.Excerpt, c.excerpt) || (c.excerpt == "" && ae.Excerpt != "") {
				t.Errorf("Excerpt = %q, want %q", ae.Excerpt, c.excerpt)
			}
			if c.excerpt != "" && !strings.Contains(err.Error(), "body starts") {
				t.Errorf("error %q does not show the excerpt", err)
			}
			if strings.ContainsAny(ae.Excerpt, "\n\r") {
				t.Errorf("Excerpt %q spans lines", ae.Excerpt)
			}
			if ae.Code != c.code {
				t.Errorf("Code = %q, want %q", ae.Code, c.code)
			}
			if got := smileid.Classify(err); got != c.class {
				t.Errorf("Classify = %v, want %v", got, c.class)
			}
			if strings.Contains(err.Error(), testkit.APIKey) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestExcerptIsBounded(t *testing.T) {
	body := "<html>" + strings.Repeat("x", 5000) + "\x00\xff" + "</html>"
	err := submitTo(t, answer(503, body), nil)
	ae := testkit.MustAs[*smileid.APIError](t, err)
	if ae.Excerpt == "" || len(ae.Excerpt) > 200 {
		t.Errorf("Excerpt has %d bytes, want a short excerpt", len(ae.Excerpt))
	}
	if len(err.Error()) > 400 {
		t.Errorf("error message has %d bytes", len(err.Error()))
	}
}

func TestTypedErrors(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		code, text string
	}{
		{"string code", `{"code":"2213","error":"Missing parameter: photo"}`, 400, "2213", "Missing parameter: photo"},
		{"numeric code", `{"code":2204,"error":"Invalid data type"}`, 400, "2204", "Invalid data type"},
		{"account", `{"code":"2214","error":"Product not activated"}`, 403, "2214", "Product not activated"},
		{"text only", `{"error":"Method not allowed"}`, 405, "", "Method not allowed"},
		{"empty body", ``, 500, "", "Internal Server Error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := submitTo(t, answer(c.status, c.body, "Content-Type", "application/json"), nil)
			// Wrapping must not hide the fields.
			wrapped := fmt.Errorf("row 3: %w", err)
			ae := testkit.MustAs[*smileid.APIError](t, wrapped)
			if ae.Status != c.status || ae.Code != c.code || ae.Text != c.text {
				t.Errorf("APIError = %+v, want status %d code %q text %q", *ae, c.status, c.code, c.text)
			}
			for _, part := range []string{c.code, c.text, fmt.Sprint(c.status)} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("message %q lacks %q", err, part)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	httpDate := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	shortTimeout := func(_ *smileid.Config, o *smileid.ClientOptions) { o.Timeout = 50 * time.Millisecond }
	type check func(t *testing.T, err error)
	retryAfter := func(lo, hi time.Duration) check {
		return func(t *testing.T, err error) {
			ae := testkit.MustAs[*smileid.APIError](t, err)
			if ae.RetryAfter < lo || ae.RetryAfter > hi {
				t.Errorf("RetryAfter = %v, want %v..%v", ae.RetryAfter, lo, hi)
			}
		}
	}
	transport := func(msg string) check {
		return func(t *testing.T, err error) {
			te := testkit.MustAs[*smileid.TransportError](t, err)
			if !strings.Contains(te.Error(), msg) {
				t.Errorf("message %q, want it to mention %q", te.Error(), msg)
			}
		}
	}
	js := func(status int, code string) http.HandlerFunc {
		return answer(status, fmt.Sprintf(`{"code":%q,"error":"text of %s"}`, code, code), "Content-Type", "application/json")
	}
	cases := []struct {
		name  string
		h     http.Handler
		mod   func(*smileid.Config, *smileid.ClientOptions)
		want  smileid.Class
		check check
	}{
		{name: "429 without Retry-After", h: answer(429, `{"error":"Too many requests"}`), want: smileid.Transient, check: retryAfter(0, 0)},
		{name: "429 Retry-After seconds", h: answer(429, `{"error":"Too many requests"}`, "Retry-After", "7"), want: smileid.Transient, check: retryAfter(7*time.Second, 7*time.Second)},
		{name: "429 Retry-After date", h: answer(429, ``, "Retry-After", httpDate(3*time.Second)), want: smileid.Transient, check: retryAfter(time.Second, 3*time.Second)},
		{name: "429 Retry-After past date", h: answer(429, ``, "Retry-After", httpDate(-time.Hour)), want: smileid.Transient, check: retryAfter(0, 0)},
		{name: "429 Retry-After garbage", h: answer(429, ``, "Retry-After", "soon"), want: smileid.Transient, check: retryAfter(0, 0)},
		{name: "429 Retry-After negative", h: answer(429, ``, "Retry-After", "-3"), want: smileid.Transient, check: retryAfter(0, 0)},
		{name: "429 Retry-After huge", h: answer(429, ``, "Retry-After", "99999999"), want: smileid.Transient, check: retryAfter(time.Second, time.Hour)},
		{name: "500 2201", h: js(500, "2201"), want: smileid.Transient},
		{name: "400 2201", h: js(400, "2201"), want: smileid.Transient},
		{name: "500 empty", h: answer(500, ""), want: smileid.Transient},
		{name: "502 html", h: answer(502, "<h1>Bad Gateway</h1>"), want: smileid.Transient},
		{name: "503", h: answer(503, `{"error":"Service Unavailable"}`, "Retry-After", "2"), want: smileid.Transient, check: retryAfter(2*time.Second, 2*time.Second)},
		{name: "504", h: answer(504, ""), want: smileid.Transient},
		{name: "408", h: answer(408, ""), want: smileid.Transient},
		{name: "302 redirect: wrong base URL", h: answer(302, "", "Location", "https://example.invalid/login"), want: smileid.Account},
		{name: "401 without a code", h: answer(401, "Unauthorized"), want: smileid.Account},
		{name: "time-out", h: slow, mod: shortTimeout, want: smileid.Transient, check: transport("time-out")},
		{name: "connection reset", h: hijack("", true), want: smileid.Transient, check: transport("unknown")},
		{name: "connection closed", h: hijack("", false), want: smileid.Transient, check: transport("unknown")},
		{name: "truncated body", h: hijack("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"ResultCode\":\"08", false),
			want: smileid.Transient, check: transport("closed before a full answer")},
		{name: "flaky reset", h: answer(200, ""), mod: func(_ *smileid.Config, o *smileid.ClientOptions) {
			o.Transport = &testkit.Flaky{Base: http.DefaultTransport, Before: func(int64) error { return testkit.ResetErr() }}
		}, want: smileid.Transient, check: transport("connection reset")},
		{name: "flaky drop after answer", h: answer(200, ""), mod: func(_ *smileid.Config, o *smileid.ClientOptions) {
			o.Transport = &testkit.Flaky{Base: http.DefaultTransport, After: func(int64) error { return io.ErrUnexpectedEOF }}
		}, want: smileid.Transient, check: transport("unknown")},
		{name: "2203", h: js(400, "2203"), want: smileid.Permanent},
		{name: "2204", h: js(400, "2204"), want: smileid.Permanent},
		{name: "2213", h: js(400, "2213"), want: smileid.Permanent},
		{name: "2413", h: js(400, "2413"), want: smileid.Permanent},
		{name: "2213 with 413", h: js(413, "2213"), want: smileid.Permanent},
		{name: "other code", h: js(400, "2999"), want: smileid.Permanent},
		{name: "404 without code", h: answer(404, "not found"), want: smileid.Foreign},
		{name: "400 without body", h: answer(400, ""), want: smileid.Foreign},
		{name: "404 html", h: answer(404, "<html><body>Not Found</body></html>"), want: smileid.Foreign},
		{name: "400 JSON without code", h: answer(400, `{"error":"bad request"}`), want: smileid.Foreign},
		{name: "429 without code", h: answer(429, "slow down", "Retry-After", "1"), want: smileid.Transient},
		{name: "2205", h: js(401, "2205"), want: smileid.Account},
		{name: "2205 with 400", h: js(400, "2205"), want: smileid.Account},
		{name: "2214", h: js(403, "2214"), want: smileid.Account},
		{name: "2220", h: js(403, "2220"), want: smileid.Account},
		{name: "bare 401", h: answer(401, ""), want: smileid.Account},
		{name: "bare 403", h: answer(403, "<html>Forbidden</html>"), want: smileid.Account},
		{name: "2209", h: js(400, "2209"), want: smileid.AlreadyEnrolled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := submitTo(t, c.h, c.mod)
			if err == nil {
				t.Fatal("Submit succeeded")
			}
			if got := smileid.Classify(err); got != c.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, c.want)
			}
			if got := smileid.Classify(fmt.Errorf("wrapped: %w", err)); got != c.want {
				t.Errorf("Classify of the wrapped error = %v, want %v", got, c.want)
			}
			if c.check != nil {
				c.check(t, err)
			}
			if strings.Contains(err.Error(), testkit.APIKey) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestClassifyPlainErrors(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, io.ErrUnexpectedEOF, errors.New("dns"), &smileid.TransportError{Err: testkit.ResetErr()}} {
		if got := smileid.Classify(err); got != smileid.Transient {
			t.Errorf("Classify(%v) = %v, want transient", err, got)
		}
	}
	for _, c := range []smileid.Class{smileid.Transient, smileid.Permanent, smileid.Account, smileid.AlreadyEnrolled, smileid.Class(9)} {
		if c.String() == "" {
			t.Errorf("Class %d has no name", int(c))
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	base := hs.URL
	hs.Close()
	c := testkit.NewClient(t, base, nil)
	_, err := c.Submit(context.Background(), smileid.User{UserID: "u", CreatedAt: "2021-08-12", Photo: []byte{0xFF, 0xD8, 0xFF}})
	te := testkit.MustAs[*smileid.TransportError](t, err)
	if smileid.Classify(err) != smileid.Transient || !strings.Contains(te.Error(), "refused") {
		t.Errorf("connection refused: %v (class %v)", err, smileid.Classify(err))
	}
}

// TestKeyNeverInErrors drives every kind of failure with a distinctive key
// and checks that no message, however printed, shows it.
func TestKeyNeverInErrors(t *testing.T) {
	var errs []error
	// Configuration errors.
	for _, base := range []string{"http://example.com", "ftp://x", "https://u:p@x", "::", "https://x/?q"} {
		_, err := smileid.NewClient(smileid.Config{PartnerID: "p", APIKey: testkit.APIKey, BaseURL: base}, smileid.ClientOptions{})
		errs = append(errs, err)
	}
	_, err := smileid.NewClient(smileid.Config{PartnerID: "p", APIKey: testkit.APIKey + "\x01"}, smileid.ClientOptions{})
	errs = append(errs, err)
	// 2205 from the emulator holding another key.
	_, _, hs := testkit.NewSandbox(t, sandbox.Options{APIKey: "the-real-key"})
	c := testkit.NewClient(t, hs.URL, nil)
	_, err = c.Submit(context.Background(), smileid.User{UserID: "u", CreatedAt: "2021-08-12", Photo: testkit.Photo(t, "jpeg", 1)})
	errs = append(errs, err, testkit.MustAs[*smileid.APIError](t, err))
	// Transport failure, time-out, forged answer, foreign page echoing the request.
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close()
	_, err = testkit.NewClient(t, refused.URL, nil).Submit(context.Background(), smileid.User{UserID: "u", Photo: []byte{1}})
	errs = append(errs, err)
	errs = append(errs,
		submitTo(t, hijack("", true), nil),
		submitTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond) }),
			func(_ *smileid.Config, o *smileid.ClientOptions) { o.Timeout = 20 * time.Millisecond }),
		submitTo(t, answer(200, testkit.SignedSuccess("forger", testkit.Partner, "user-1")), nil),
		submitTo(t, answer(200, `{"ResultCode":"0840"}`), nil),
		submitTo(t, answer(502, "<html>upstream</html>"), nil),
	)
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if out := fmt.Sprintf(verb, err); strings.Contains(out, testkit.APIKey) {
				t.Errorf("case %d: %s of the error shows the key: %s", i, verb, out)
			}
		}
	}
}
