// Package urlref holds the rules for references written as URLs, shared by
// the manifest's photo column, the photo sources and the client's base URL:
// what counts as a URL rather than a path, its scheme, which hosts are
// loopback (where plain http:// is allowed), and how a URL is redacted before
// it is shown, logged or stored. It knows nothing of photos, rows or the API.
package urlref

import (
	"net"
	"strings"
)

// IsURL reports whether photo is written as a URL, "scheme://..." (a scheme
// of two or more letters, digits, "+", "-" or "."; so not a Windows drive
// letter), rather than a file path. Such a value is never resolved against
// the manifest's folder. Supported schemes are s3, gs, azblob, https, and
// http for loopback hosts; the manifest refuses the others.
func IsURL(photo string) bool {
	_, ok := Scheme(photo)
	return ok
}

// Scheme returns the lowercased scheme of a value written "scheme://...".
func Scheme(s string) (string, bool) {
	i := strings.Index(s, "://")
	if i < 2 {
		return "", false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return strings.ToLower(s[:i]), true
}

// Redacted replaces the secrets of a URL: its user info and query values.
const Redacted = "REDACTED"

// Redact returns photo as it may be shown in a message or a log, kept in
// the store or written in the rejects file. A file path comes back
// unchanged. A URL ("scheme://...") keeps its scheme, host and path, so that
// it still names the object, but its user info (user:password@) becomes
// REDACTED@, every query value becomes REDACTED (the names are kept: a
// presigned URL's X-Amz-Signature, X-Goog-Signature, an Azure SAS's sig, a
// token=...), a query part without a name is REDACTED whole, and the
// fragment is dropped: https://host/p.jpg?X-Amz-Signature=REDACTED.
// It is the one redaction of references: the manifest, the photo sources
// and the client's base URL use it.
func Redact(photo string) string {
	scheme, ok := Scheme(photo)
	if !ok {
		return photo
	}
	rest := photo[len(scheme)+3:]
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	authority, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		b.WriteString(Redacted + "@")
		authority = authority[at+1:]
	}
	b.WriteString(authority)
	if hasPath {
		b.WriteByte('/')
		b.WriteString(path)
	}
	if hasQuery && query != "" {
		seen := map[string]bool{}
		sep := byte('?')
		for _, part := range strings.Split(query, "&") {
			name, _, named := strings.Cut(part, "=")
			switch {
			case part == "":
				continue
			case !named || name == "":
				name = Redacted
			default:
				name += "=" + Redacted
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			b.WriteByte(sep)
			b.WriteString(name)
			sep = '&'
		}
	}
	return b.String()
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
