// Package manifest reads and checks bulkenroll manifests: CSV files with a
// header naming the columns user_id, user_created_at and photo, one user per
// record.
//
// A Reader streams the records one at a time, so memory does not grow with the
// number of rows; a record it cannot use comes back with a *RowError and the
// next call goes on with the following record. A Validator checks the fields
// and the photo of a row offline (reading a photo through once to check that
// it is whole, without holding it), and ReadPhoto loads a photo for sending,
// checking it again. Nothing in this package writes
// anything.
package manifest

import (
	"strconv"
	"unicode/utf8"
)

// DefaultMaxPhotoBytes is the largest photo accepted when no other limit is
// set: 5 MiB of file bytes, before base64 encoding.
const DefaultMaxPhotoBytes int64 = 5 << 20

// MaxUserIDLen is the longest user_id accepted, in bytes.
const MaxUserIDLen = 128

// Names of the required manifest columns, as written in the header (matched
// case-insensitively) and as used in RowError.Field.
const (
	ColUserID    = "user_id"
	ColCreatedAt = "user_created_at"
	ColPhoto     = "photo"
)

// FieldRow is the RowError.Field of a record that is refused as a whole: a CSV
// syntax error, too few fields, a NUL byte or invalid UTF-8.
const FieldRow = "row"

// Row is one data record of a manifest. Its strings are safe to keep: they are
// not reused by later calls to Reader.Next.
type Row struct {
	Line      int    // 1-based line number in the file where this record starts (header is line 1)
	UserID    string // trimmed of surrounding spaces
	CreatedAt string // trimmed, otherwise exactly as given (it is sent as given)
	Photo     string // the photo column as given (trimmed), a URL's secrets redacted (urlref.Redact): shown, stored, written in rejects
	PhotoPath string // the photo column resolved against the manifest's folder unless absolute or a URL, secrets kept: only opened ("" if Photo empty)
	// Compare holds the other fields of a compare row (nil for backfill);
	// its selfie is Photo / PhotoPath.
	Compare *CompareFields
}

// RowError is why one row is refused. Field is "user_id", "user_created_at",
// "photo" or "row" (the record as a whole); Reason says what is wrong in words
// meant for the person who wrote the manifest.
type RowError struct {
	Field  string
	Reason string
}

// Error returns Field + ": " + Reason, for example
// `photo: not a JPEG or PNG (content is a GIF image)`.
func (e *RowError) Error() string { return e.Field + ": " + e.Reason }

// HeaderError means the manifest cannot be used at all: the file is empty,
// its header cannot be parsed, or a required column is missing or appears
// twice.
type HeaderError struct {
	Reason string
}

// Error returns "manifest header: " + Reason, for example
// `manifest header: missing required column "photo"`.
func (e *HeaderError) Error() string { return "manifest header: " + e.Reason }

// rowErr builds a *RowError.
func rowErr(field, reason string) *RowError { return &RowError{Field: field, Reason: reason} }

// maxShown is how many bytes of a value a message quotes before cutting it.
const maxShown = 60

// quoteValue quotes s with %q semantics for a message, cutting it (at a rune
// boundary) after maxShown bytes and saying how long it really was.
func quoteValue(s string) string {
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// showPath returns p as it should appear in a message: as is when it is plain
// printable text, quoted otherwise (spaces at either end, control characters,
// invalid UTF-8).
func showPath(p string) string {
	if p == "" || p[0] == ' ' || p[len(p)-1] == ' ' {
		return strconv.Quote(p)
	}
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return strconv.Quote(p)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(p[i:])
		if (r == utf8.RuneError && size == 1) || !strconv.IsPrint(r) {
			return strconv.Quote(p)
		}
		i += size
	}
	return p
}
