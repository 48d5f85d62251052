package sandbox

// Reading request bodies: a fast reader for the common form of a backfill
// body, with encoding/json as the authority for everything else.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
)

// parseFast reads the common form of a backfill body without encoding/json:
// one JSON object whose keys are exactly the six field names and whose values
// are strings of printable ASCII without escapes. encoding/json would read
// such a body to the same values, but in three passes over the photo; this
// reads it in one and returns the photo as a slice of body, valid as long as
// body is. Any other input, valid JSON or not, makes ok false, and the caller
// must then use encoding/json.
func parseFast(b []byte) (req request, photo []byte, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return req, nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return req, nil, skipSpace(b, i+1) == len(b)
	}
	for {
		key, next, ok := plainString(b, i, false)
		if !ok {
			return req, nil, false
		}
		i = skipSpace(b, next)
		if i == len(b) || b[i] != ':' {
			return req, nil, false
		}
		val, next, ok := plainString(b, skipSpace(b, i+1), string(key) == "photo")
		if !ok {
			return req, nil, false
		}
		switch string(key) { // no allocation: the compiler compares in place
		case "partner_id":
			req.PartnerID = string(val)
		case "timestamp":
			req.Timestamp = string(val)
		case "signature":
			req.Signature = string(val)
		case "user_id":
			req.UserID = string(val)
		case "user_created_at":
			req.UserCreatedAt = string(val)
		case "photo":
			photo = val
		default:
			return req, nil, false
		}
		i = skipSpace(b, next)
		if i == len(b) {
			return req, nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return req, photo, skipSpace(b, i+1) == len(b)
		default:
			return req, nil, false
		}
	}
}

// plainString reads the JSON string starting at b[i] if it holds only
// printable ASCII and no escapes, returning its contents and the index after
// its closing quote. With long set (for the photo) it only rules out escapes
// and raw line breaks, using fast searches; the caller must then rule out
// other control characters, which base64 decoding does as a side effect (see
// hasControl).
func plainString(b []byte, i int, long bool) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	s = b[i+1 : i+1+end]
	if long {
		if bytes.IndexByte(s, '\\') >= 0 || bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
			return nil, 0, false
		}
	} else {
		for _, c := range s {
			if c < 0x20 || c >= 0x7f || c == '\\' {
				return nil, 0, false
			}
		}
	}
	return s, i + 2 + end, true
}

// hasControl reports whether b holds a byte JSON forbids unescaped in a string.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// request holds the fields of a backfill body. Strings let encoding/json
// report a wrong type as *json.UnmarshalTypeError naming the field.
type request struct {
	PartnerID     string `json:"partner_id"`
	Timestamp     string `json:"timestamp"`
	Signature     string `json:"signature"`
	UserID        string `json:"user_id"`
	UserCreatedAt string `json:"user_created_at"`
	Photo         string `json:"photo"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func firstNonSpace(b []byte) byte {
	if i := skipSpace(b, 0); i < len(b) {
		return b[i]
	}
	return 0
}

func getBuf() *bytes.Buffer {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

// putBuf returns buf to the pool unless it grew past 16 MiB.
func putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= 16<<20 {
		bufPool.Put(buf)
	}
}

// readBody reads r's body into buf, at most limit bytes. It returns the
// rejection to answer when the body is too large (413, 2213) or cannot be
// read (400, 2203), and nil when buf holds the body.
func readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, limit int64) *answer {
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return rejection(http.StatusRequestEntityTooLarge, "2213",
				fmt.Sprintf("Request body larger than %d bytes", limit))
		}
		return rejection(http.StatusBadRequest, "2203", "Invalid JSON: could not read the request body")
	}
	return nil
}

// decodeJSON reads body, which must be one JSON object, into v with
// encoding/json. It returns the rejection to answer otherwise: 2203 for
// invalid JSON, 2204 naming the field whose value has the wrong type.
func decodeJSON(body []byte, v any) *answer {
	if firstNonSpace(body) != '{' {
		return rejection(http.StatusBadRequest, "2203", "Invalid JSON: the body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			field := typeErr.Field
			if field == "" {
				field = "body"
			}
			return rejection(http.StatusBadRequest, "2204",
				fmt.Sprintf("Invalid data type: %s must be %s", field, jsonKind(typeErr.Type)))
		}
		return rejection(http.StatusBadRequest, "2203", "Invalid JSON")
	}
	return nil
}

// jsonKind names the JSON kind of values of Go type t, for 2204 messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "another type"
}

// backfillBody is a backfill request read from its body: the fields, the
// photo's base64 text, and checkPhoto's verdict on it ("" if acceptable,
// with info describing it).
type backfillBody struct {
	request
	photo     []byte
	photoText string
	info      PhotoInfo
}

// parseBackfill reads a backfill body. The common form goes through
// parseFast; anything it is unsure of goes through encoding/json, whose
// verdict is authoritative. The photo is inspected as soon as it is parsed,
// although its verdict is only given after the checks that come first: the
// fast path needs it to be sure the body was valid JSON (a photo that is not
// base64 may hold a raw control character that JSON forbids).
func (s *Server) parseBackfill(body []byte) (backfillBody, *answer) {
	var b backfillBody
	ok := false
	if !s.jsonOnly {
		b.request, b.photo, ok = parseFast(body)
	}
	if ok && len(b.photo) > 0 {
		b.photoText, b.info = s.checkPhoto(b.photo)
		if b.photoText == textNotBase64 && hasControl(b.photo) {
			ok = false // invalid JSON: let encoding/json say so
		}
	}
	if ok {
		return b, nil
	}
	b = backfillBody{}
	if a := decodeJSON(body, &b.request); a != nil {
		return b, a
	}
	b.photo = []byte(b.Photo) // a copy: this path is rare
	if len(b.photo) > 0 {
		b.photoText, b.info = s.checkPhoto(b.photo)
	}
	return b, nil
}
