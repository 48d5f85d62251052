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

// remoteReason returns why a photo URL cannot be used (an unsupported scheme,
// a missing bucket, host or key, plain http to a host that is not loopback),
// or "" when it is well formed. Nothing is fetched. Messages show the URL
// without its query, which may hold secrets.
func remoteReason(photo string) string {
	scheme, _ := urlScheme(photo)
	shown := photo
	if i := strings.IndexAny(shown, "?#"); i >= 0 {
		shown = shown[:i]
	}
	rest := shown[len(scheme)+3:]
	authority, _, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		shown = shown[:len(scheme)+3] + rest[at+1:] // drop userinfo
	}
	shown = showPath(shown)
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
