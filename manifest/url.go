package manifest

import (
	"errors"
	"net/url"
	"strings"

	"bulkenroll/importer/urlref"
)

// remoteReason returns why a photo URL cannot be used (an unsupported scheme,
// a missing bucket, host or key, plain http to a host that is not loopback),
// or "" when it is well formed. Nothing is fetched. Messages show the URL
// redacted (RedactURL).
func remoteReason(photo string) string {
	scheme, _ := urlref.Scheme(photo)
	shown := showPath(urlref.Redact(photo))
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
		if scheme == "http" && !urlref.IsLoopback(u.Hostname()) {
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
