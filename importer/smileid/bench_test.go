package smileid

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// benchPhoto is a 20 KiB "JPEG".
var benchPhoto = append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte{0x5A, 0x17}, 10<<10-2)...)

func BenchmarkSign(b *testing.B) {
	b.ReportAllocs()
	ts := signature.Timestamp(time.Now())
	for b.Loop() {
		_ = signature.Sign("apiKey", "partner", ts)
	}
}

func BenchmarkBuildBody(b *testing.B) {
	c, err := NewClient(Config{PartnerID: "partner", APIKey: "apiKey", BaseURL: "http://127.0.0.1:1"}, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	u := User{UserID: "user-000123", CreatedAt: "2021-08-12T15:14:43Z", Photo: benchPhoto}
	var buf bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPhoto)))
	for b.Loop() {
		c.buildBody(&buf, u)
	}
}

// BenchmarkSubmitLoopback sends a 20 KiB photo to a loopback server that
// answers a signed success, to measure the client's own cost per request.
func BenchmarkSubmitLoopback(b *testing.B) {
	ts := signature.Timestamp(time.Now())
	answer := []byte(fmt.Sprintf(`{"ResultCode":"0840","ResultText":"Enroll User","SmileJobID":"1","timestamp":%q,"signature":%q}`,
		ts, signature.Sign("apiKey", "partner", ts)))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer hs.Close()
	c, err := NewClient(Config{PartnerID: "partner", APIKey: "apiKey", BaseURL: hs.URL}, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	u := User{UserID: "user-000123", CreatedAt: "2021-08-12T15:14:43Z", Photo: benchPhoto}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPhoto)))
	for b.Loop() {
		if _, err := c.Submit(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
}
