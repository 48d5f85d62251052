package smileid

import (
	"bulkenroll/importer/urlref"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Base URLs of Smile ID's two environments.
const (
	SandboxURL    = "https://testapi.smileidentity.com"
	ProductionURL = "https://api.smileidentity.com"
)

// ErrConfig marks configuration errors (exit code 2).
var ErrConfig = errors.New("configuration")

// Secret holds the API key. Its String, GoString, Format and MarshalText methods
// never reveal it, so a Config can be printed or logged safely.
type Secret string

const redacted = "[redacted]"

// String hides the secret.
func (Secret) String() string { return redacted }

// GoString hides the secret.
func (Secret) GoString() string { return redacted }

// MarshalText hides the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format hides the secret under every fmt verb: without it, a verb that does
// not call String (%d, %t, ...) prints the raw key in its "%!d(...)" report.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Config is the client's configuration. Check it once before use.
type Config struct {
	// PartnerID is sent, and signed, exactly as given.
	PartnerID string
	// APIKey signs the requests; it is never printed, logged or stored.
	APIKey Secret
	// Env is "sandbox" (the default) or "production".
	Env string
	// BaseURL, when set, overrides Env.
	BaseURL string
}

// Check validates the configuration and fills BaseURL from Env when it is
// empty. The errors wrap ErrConfig and never contain the API key.
func (c *Config) Check() error {
	if strings.TrimSpace(c.PartnerID) == "" {
		return fmt.Errorf("%w: partner ID missing: set SMILE_PARTNER_ID or --partner-id", ErrConfig)
	}
	if strings.TrimSpace(c.PartnerID) != c.PartnerID || strings.ContainsFunc(c.PartnerID, isControl) {
		return fmt.Errorf("%w: partner ID %q has surrounding spaces or control characters", ErrConfig, c.PartnerID)
	}
	if c.APIKey == "" {
		return fmt.Errorf("%w: API key missing: set SMILE_API_KEY, or SMILE_API_KEY_FILE / --api-key-file", ErrConfig)
	}
	if strings.ContainsFunc(string(c.APIKey), isControl) {
		return fmt.Errorf("%w: API key contains control characters (a stray newline in the key file is trimmed; others are not)", ErrConfig)
	}
	if c.BaseURL == "" {
		switch c.Env {
		case "", "sandbox":
			c.Env, c.BaseURL = "sandbox", SandboxURL
		case "production":
			c.BaseURL = ProductionURL
		default:
			return fmt.Errorf("%w: environment %q: want sandbox or production", ErrConfig, c.Env)
		}
	}
	base, err := CheckBaseURL(c.BaseURL)
	if err != nil {
		return err
	}
	c.BaseURL = base
	return nil
}

// CheckBaseURL validates a base URL and returns it without a trailing slash:
// https for any host, plain http only for loopback hosts (127.0.0.0/8, ::1,
// localhost), no user info, query or fragment. Its errors show the URL with
// its user info and query values redacted (urlref.Redact).
func CheckBaseURL(raw string) (string, error) {
	shown := urlref.Redact(raw)
	if at := strings.LastIndexByte(shown, '@'); at >= 0 && !strings.Contains(shown, "://") {
		shown = urlref.Redacted + shown[at:] // "user:password@host", with no scheme
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, password included
		}
		return "", fmt.Errorf("%w: base URL %q: %v", ErrConfig, shown, err)
	}
	if u.Hostname() == "" || u.Opaque != "" { // Hostname: "https://:443" has a Host but no host name
		return "", fmt.Errorf("%w: base URL %q: want a URL such as https://api.smileidentity.com", ErrConfig, shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: base URL %q: must not carry user info, a query or a fragment", ErrConfig, shown)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !urlref.IsLoopback(u.Hostname()) {
			return "", fmt.Errorf("%w: base URL %s: plain http is refused for %s, which is not a loopback host; use https", ErrConfig, shown, u.Hostname())
		}
	default:
		return "", fmt.Errorf("%w: base URL %q: scheme %q, want https", ErrConfig, shown, u.Scheme)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
