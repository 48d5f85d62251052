// Package signature computes and checks the request signatures of the Smile ID
// API: base64(HMAC-SHA256(api_key, timestamp + partner_id + "sid_request")).
//
// The client signs its requests with it and verifies the API's answers; the
// sandbox emulator uses the same functions to check requests and sign answers.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"time"
)

// TimestampLayout is the UTC ISO 8601 form with milliseconds that Smile ID
// expects, for example 2023-02-13T15:07:42.214Z.
const TimestampLayout = "2006-01-02T15:04:05.000Z"

// suffix is the constant part of every signed message.
const suffix = "sid_request"

// Timestamp formats t in UTC as TimestampLayout.
func Timestamp(t time.Time) string {
	return t.UTC().Format(TimestampLayout)
}

// Sign returns the signature of timestamp and partnerID under apiKey, in
// standard base64.
func Sign(apiKey, partnerID, timestamp string) string {
	return base64.StdEncoding.EncodeToString(sum(apiKey, partnerID, timestamp))
}

// Verify reports whether sig is the signature of timestamp and partnerID under
// apiKey. The comparison takes constant time.
func Verify(apiKey, partnerID, timestamp, sig string) bool {
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(got, sum(apiKey, partnerID, timestamp)) == 1
}

func sum(apiKey, partnerID, timestamp string) []byte {
	mac := hmac.New(sha256.New, []byte(apiKey))
	mac.Write([]byte(timestamp))
	mac.Write([]byte(partnerID))
	mac.Write([]byte(suffix))
	return mac.Sum(nil)
}
