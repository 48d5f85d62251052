package manifest

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// IsURL reports whether photo is written as a URL, "scheme://..." (a scheme
// of two or more letters, digits, "+", "-" or "."; so not a Windows drive
// letter), rather than a file path. Such a value is never resolved against
// the manifest's folder. Supported schemes are s3, gs, azblob, https, and
// http for loopback hosts; CheckPhoto refuses the others.
func IsURL(photo string) bool {
	_, ok := urlScheme(photo)
	return ok
}

// urlScheme returns the lowercased scheme of a value written "scheme://...".
func urlScheme(s string) (string, bool) {
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

// RedactURL returns photo as it may be shown in a message or a log, kept in
// the store or written in the rejects file. A file path comes back
// unchanged. A URL ("scheme://...") keeps its scheme, host and path, so that
// it still names the object, but its user info (user:password@) becomes
// REDACTED@, every query value becomes REDACTED (the names are kept: a
// presigned URL's X-Amz-Signature, X-Goog-Signature, an Azure SAS's sig, a
// token=...), a query part without a name is REDACTED whole, and the
// fragment is dropped: https://host/p.jpg?X-Amz-Signature=REDACTED.
// It is the one redaction of photo references; the importer's photo source
// uses it too.
func RedactURL(photo string) string {
	scheme, ok := urlScheme(photo)
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

// remoteReason returns why a photo URL cannot be used (an unsupported scheme,
// a missing bucket, host or key, plain http to a host that is not loopback),
// or "" when it is well formed. Nothing is fetched. Messages show the URL
// redacted (RedactURL).
func remoteReason(photo string) string {
	scheme, _ := urlScheme(photo)
	shown := showPath(RedactURL(photo))
	switch scheme {
	case "s3", "gs", "azblob", "http", "https":
	default:
		return "unsupported URL scheme " + scheme + ":// in " + shown +
			" (use a file path, s3://, gs://, azblob:// or https://)"
	}
	u, err := url.Parse(photo)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query included
		}
		return "not a valid URL: " + shown + " (" + err.Error() + ")"
	}
	if u.Fragment != "" || strings.Contains(photo, "#") {
		return `"#" in ` + shown + ` starts a URL fragment; write it as %23`
	}
	switch scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return "URL without a host: " + shown
		}
		if scheme == "http" && !isLoopbackHost(u.Hostname()) {
			return "plain http:// is allowed only for loopback hosts: " + shown + " (use https://)"
		}
		return ""
	}
	what := "bucket"
	if scheme == "azblob" {
		what = "container"
	}
	if u.Host == "" {
		return "missing " + what + " name in " + shown + " (the form is " + scheme + "://" + what + "/key)"
	}
	if key := strings.TrimPrefix(u.Path, "/"); key == "" || strings.HasSuffix(key, "/") {
		return "missing object key in " + shown + " (the form is " + scheme + "://" + what + "/key)"
	}
	return ""
}

// isLoopbackHost reports whether host is localhost or a loopback IP address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
