package testkit

import (
	"io"
	"log"
	"net/http/httputil"
	"net/url"
	"testing"
)

// NewProxy returns a reverse proxy to target (a base URL) that logs nothing:
// tests put it in front of the sandbox to change or delay what the client
// sees.
func NewProxy(t testing.TB, target string) *httputil.ReverseProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("proxy target %q: %v", target, err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	return rp
}
