package smileid

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"bulkenroll/importer/smileid/sandbox"
)

// BenchmarkAnswer reads a success answer as the sandbox sends it (about 800
// bytes of JSON): parse, check the code and user, verify its signature.
func BenchmarkAnswer(b *testing.B) {
	sb, err := sandbox.New(sandbox.Options{PartnerID: "partner", APIKey: "apiKey"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(Config{PartnerID: "partner", APIKey: "apiKey", BaseURL: "http://127.0.0.1:1"}, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var body bytes.Buffer
	c.buildBody(&body, User{UserID: "user-000123", CreatedAt: "2021-08-12T15:14:43Z", Photo: benchPhoto})
	rec := httptest.NewRecorder()
	sb.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, sandbox.BackfillPath, &body))
	if rec.Code != http.StatusOK {
		b.Fatalf("sandbox: %d %s", rec.Code, rec.Body)
	}
	data := rec.Body.Bytes()
	resp := &http.Response{StatusCode: http.StatusOK, Header: rec.Header()}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := c.success(resp, data, "user-000123"); err != nil {
			b.Fatal(err)
		}
	}
}
