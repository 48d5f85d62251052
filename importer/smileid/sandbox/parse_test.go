package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bulkenroll/importer/smileid/signature"
)

// verdict runs body through a fresh server and returns its answer, with the
// parts that differ between runs (job IDs) left out.
func verdict(t testing.TB, body []byte, jsonOnly bool) string {
	fixed := time.Date(2024, 3, 5, 10, 11, 12, 0, time.UTC)
	s, err := New(Options{PartnerID: testPartner, APIKey: testKey, Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	s.jsonOnly = jsonOnly
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("POST", BackfillPath, bytes.NewReader(body)))
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer %q: %v", w.Body.Bytes(), err)
	}
	if w.Code == http.StatusOK {
		pp := m["PartnerParams"].(map[string]any)
		return fmt.Sprintf("200 %v user=%q created=%q enrolled=%v", m["ResultCode"], pp["user_id"], pp["user_created_at"], s.Enrolled())
	}
	return fmt.Sprintf("%d %v %v", w.Code, m["code"], m["error"])
}

// validBody is a signed body with the given photo text and user_id text,
// both inserted verbatim (already JSON-encoded or deliberately not).
func validBody(userJSON, photoJSON string) string {
	ts := signature.Timestamp(time.Now())
	return fmt.Sprintf(`{"partner_id":%q,"timestamp":%q,"signature":%q,"user_id":%s,"user_created_at":"2021-01-01","photo":%s}`,
		testPartner, ts, signature.Sign(testKey, testPartner, ts), userJSON, photoJSON)
}

func TestBodyForms(t *testing.T) {
	photo := b64(jpegPhoto[:300])
	cases := []struct {
		name, body, want string
	}{
		{"plain", validBody(`"u1"`, `"`+photo+`"`), "200 0840"},
		{"escaped slash in photo", validBody(`"u1"`, `"`+strings.ReplaceAll(photo, "/", `\/`)+`"`), "200 0840"},
		{"raw newline in photo", validBody(`"u1"`, `"`+photo[:8]+"\n"+photo[8:]+`"`), "400 2203"},
		{"escaped newline in photo", validBody(`"u1"`, `"`+photo[:8]+`\n`+photo[8:]+`"`), "200 0840"},
		{"raw tab in photo", validBody(`"u1"`, `"`+photo[:8]+"\t"+photo[8:]+`"`), "400 2203"},
		{"NUL in photo", validBody(`"u1"`, `"`+photo[:8]+"\x00"+photo[8:]+`"`), "400 2203"},
		{"non-ASCII in photo", validBody(`"u1"`, `"`+photo[:8]+"é"+photo[8:]+`"`), "400 2213"},
		{"control in user_id", validBody("\"u\x01\"", `"`+photo+`"`), "400 2203"},
		{"unicode user_id", validBody(`"José"`, `"`+photo+`"`), `200 0840 user="José"`},
		{"escaped unicode user_id", validBody(`"Jos\u00e9"`, `"`+photo+`"`), `200 0840 user="José"`},
		{"unterminated", `{"photo":"abc`, "400 2203"},
		{"trailing comma", `{"user_id":"a",}`, "400 2203"},
		{"empty object", ` { } `, "400 2413 Missing parameter: partner_id"},
		{"extra key", strings.Replace(validBody(`"u1"`, `"`+photo+`"`), "{", `{"source_sdk":"go","n":1,`, 1), "200 0840"},
		{"spaced out", strings.NewReplacer(`":"`, `" : "`, `","`, "\" ,\n\t\"", "{", "{ ", "}", " }").Replace(validBody(`"u1"`, `"`+photo+`"`)), "200 0840"},
		{"duplicate key, last wins", strings.Replace(validBody(`"u1"`, `"`+photo+`"`), `"user_id":"u1"`, `"user_id":"u0","user_id":"u1"`, 1), `200 0840 user="u1"`},
		{"two objects", validBody(`"u1"`, `"`+photo+`"`) + `{}`, "400 2203"},
		{"number user", validBody(`7`, `"`+photo+`"`), "400 2204"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fast, slow := verdict(t, []byte(c.body), false), verdict(t, []byte(c.body), true)
			if fast != slow {
				t.Errorf("fast path %q, encoding/json %q", fast, slow)
			}
			if !strings.HasPrefix(fast, c.want) {
				t.Errorf("answer %q, want %q", fast, c.want)
			}
		})
	}
}

// FuzzParseFast checks that the fast parser never changes an answer.
func FuzzParseFast(f *testing.F) {
	photo := b64(jpegPhoto[:30])
	f.Add(validBody(`"u1"`, `"`+photo+`"`))
	f.Add(validBody(`"u\"1"`, `"`+photo+"\t"+`"`))
	f.Add(`{"photo":"AAAA","user_id":"x"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, body string) {
		if fast, slow := verdict(t, []byte(body), false), verdict(t, []byte(body), true); fast != slow {
			t.Errorf("body %q: fast path %q, encoding/json %q", body, fast, slow)
		}
	})
}

// BenchmarkParseBackfill measures why parseFast is kept: a backfill body
// with a 20 KiB photo (the size make bench uses) read by parseFast and by
// encoding/json alone, through the whole handler.
func BenchmarkParseBackfill(b *testing.B) {
	for _, c := range []struct {
		name     string
		jsonOnly bool
	}{{"parseFast", false}, {"encoding-json", true}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(Options{PartnerID: testPartner, APIKey: testKey})
			if err != nil {
				b.Fatal(err)
			}
			s.jsonOnly = c.jsonOnly
			bodies := make([][]byte, 1000)
			for i := range bodies {
				bodies[i] = mustJSON(fields(fmt.Sprint("bench-", i)))
			}
			b.SetBytes(int64(len(bodies[0])))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, httptest.NewRequest("POST", BackfillPath, bytes.NewReader(bodies[i%len(bodies)])))
				if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
					b.Fatalf("HTTP %d", w.Code)
				}
			}
		})
	}
}
