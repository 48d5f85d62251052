package photosource

import (
	"bulkenroll/importer/urlref"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// refKind says where a photo lives.
type refKind int

const (
	kindBlob refKind = iota // s3://, gs://, azblob:// through gocloud.dev/blob
	kindHTTP                // https://, or http:// to a loopback host
)

// blobSchemes are the schemes opened through gocloud.dev/blob.
var blobSchemes = map[string]bool{"s3": true, "gs": true, "azblob": true}

// ref is a parsed photo reference.
type ref struct {
	kind  refKind
	shown string   // the reference as it may appear in messages
	u     *url.URL // kindHTTP: the URL; kindBlob: the bucket URL (no path)
	key   string   // kindBlob: the object key
	cache string   // kindBlob: scheme, bucket and canonical query
}

// IsRemote reports whether ref names a remote photo: it starts with s3://,
// gs://, azblob://, https:// or http:// (in any case). Anything else is a
// local path, read by package manifest (Stat and Open refuse it as
// malformed), or a scheme Stat and Open refuse.
func IsRemote(ref string) bool {
	s, ok := urlref.Scheme(ref)
	return ok && (blobSchemes[s] || s == "https" || s == "http")
}

// Redact returns ref as it may be shown in messages and logs: a local path
// unchanged; a URL with its user info and every query value replaced by
// REDACTED and without its fragment, since they may carry passwords,
// signatures or tokens (presigned URLs, SAS tokens). It is
// urlref.Redact, the one redaction of photo references.
func Redact(ref string) string { return urlref.Redact(ref) }

// parseRef parses a photo reference, refusing malformed ones (ErrBadRef) and
// plain http to hosts that are not loopback (ErrInsecure) without any I/O.
func parseRef(s string) (*ref, error) {
	scheme, ok := urlref.Scheme(s)
	if !ok {
		if s == "" {
			return nil, newErr(`""`, ErrBadRef, "empty photo reference", nil)
		}
		// Local photos are read by package manifest, not here.
		return nil, newErr(s, ErrBadRef, "not a URL (use s3://, gs://, azblob:// or https://)", nil)
	}
	shown := Redact(s)
	bad := func(format string, args ...any) error {
		return newErr(shown, ErrBadRef, fmt.Sprintf(format, args...), nil)
	}
	if !IsRemote(s) {
		return nil, bad("unsupported scheme %q (use s3://, gs://, azblob://, https:// or a local path)", scheme+"://")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, secrets included
		}
		return nil, bad("not a valid URL: %v", err)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return nil, bad(`"#" starts a URL fragment; write it as %%23 in a key or path`)
	}
	if scheme == "http" || scheme == "https" {
		if u.Host == "" || u.Hostname() == "" {
			return nil, bad("missing host")
		}
		if scheme == "http" && !urlref.IsLoopback(u.Hostname()) {
			return nil, newErr(shown, ErrInsecure, "plain http:// is allowed only for loopback hosts (127.0.0.0/8, ::1, localhost); use https://", nil)
		}
		return &ref{kind: kindHTTP, shown: shown, u: u}, nil
	}

	// s3://, gs://, azblob://
	what := "bucket"
	if scheme == "azblob" {
		what = "container"
	}
	if u.Host == "" {
		return nil, bad("missing %s name (the form is %s://%s/key)", what, scheme, what)
	}
	if u.User != nil {
		return nil, bad("credentials in a %s:// URL are not supported; use the cloud's usual credentials", scheme)
	}
	key := strings.TrimPrefix(u.Path, "/")
	if key == "" || strings.HasSuffix(key, "/") {
		return nil, bad("missing object key (the form is %s://%s/key)", scheme, what)
	}
	q := u.Query()
	if err := checkQuery(scheme, q); err != nil {
		return nil, newErr(shown, ErrInsecure, err.Error(), nil)
	}
	bu := &url.URL{Scheme: scheme, Host: u.Host, RawQuery: canonicalQuery(q)}
	return &ref{kind: kindBlob, shown: shown, u: bu, key: key, cache: bu.String()}, nil
}

// checkQuery refuses bucket URL parameters that would send photos over plain
// http to a host that is not loopback.
func checkQuery(scheme string, q url.Values) error {
	switch scheme {
	case "s3":
		endpoint := q.Get("endpoint")
		if endpoint != "" {
			eu, err := url.Parse(endpoint)
			if err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https") {
				return fmt.Errorf("endpoint must be a URL such as https://minio.example.com:9000")
			}
			if eu.Scheme == "http" && !urlref.IsLoopback(eu.Hostname()) {
				return fmt.Errorf("a plain http:// endpoint is allowed only for loopback hosts; use https://")
			}
		}
		if v, err := strconv.ParseBool(q.Get("disable_https")); err == nil && v {
			if endpoint == "" || !strings.HasPrefix(endpoint, "http") {
				return fmt.Errorf("disable_https=true is allowed only with a loopback endpoint")
			}
			if eu, err := url.Parse(endpoint); err != nil || !urlref.IsLoopback(eu.Hostname()) {
				return fmt.Errorf("disable_https=true is allowed only with a loopback endpoint")
			}
		}
	case "azblob":
		if strings.EqualFold(q.Get("protocol"), "http") {
			d := q.Get("domain")
			if h, _, err := net.SplitHostPort(d); err == nil {
				d = h
			}
			if !urlref.IsLoopback(d) {
				return fmt.Errorf("protocol=http is allowed only with a loopback domain")
			}
		}
	}
	return nil
}

// canonicalQuery encodes q with its keys sorted, so that two references to
// the same bucket with the parameters in another order share one bucket.
func canonicalQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
		}
	}
	return b.String()
}
