package smileid_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"bulkenroll/importer/smileid"
	"bulkenroll/importer/testkit"
)

func TestConfigCheck(t *testing.T) {
	cases := []struct {
		name     string
		cfg      smileid.Config
		wantURL  string // when no error is expected
		wantEnv  string // when set, Env after Check
		wantErr  string // substring of the error; "" for success
		notInErr string // must not appear in the error
	}{
		{name: "missing partner", cfg: smileid.Config{APIKey: testkit.APIKey}, wantErr: "partner ID missing"},
		{name: "blank partner", cfg: smileid.Config{PartnerID: "  ", APIKey: testkit.APIKey}, wantErr: "partner ID missing"},
		{name: "partner with spaces", cfg: smileid.Config{PartnerID: " p1", APIKey: testkit.APIKey}, wantErr: "surrounding spaces"},
		{name: "partner with newline", cfg: smileid.Config{PartnerID: "p\n1", APIKey: testkit.APIKey}, wantErr: "control characters"},
		{name: "missing key", cfg: smileid.Config{PartnerID: "p1"}, wantErr: "API key missing"},
		{name: "key with control character", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey + "\n"}, wantErr: "control characters"},
		{name: "default env", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey}, wantURL: smileid.SandboxURL, wantEnv: "sandbox"},
		{name: "sandbox", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, Env: "sandbox"}, wantURL: "https://testapi.smileidentity.com"},
		{name: "production", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, Env: "production"}, wantURL: "https://api.smileidentity.com", wantEnv: "production"},
		{name: "bogus env", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, Env: "staging"}, wantErr: `environment "staging"`},
		{name: "base URL overrides env", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, Env: "production", BaseURL: "https://smile.example.org/"}, wantURL: "https://smile.example.org"},
		{name: "base URL with a path", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://gw.example.org/smile/"}, wantURL: "https://gw.example.org/smile"},
		{name: "http 127.0.0.1", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://127.0.0.1:8080"}, wantURL: "http://127.0.0.1:8080"},
		{name: "http 127.9.9.9", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://127.9.9.9"}, wantURL: "http://127.9.9.9"},
		{name: "http ::1", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://[::1]:9000/"}, wantURL: "http://[::1]:9000"},
		{name: "http localhost", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://localhost:8080"}, wantURL: "http://localhost:8080"},
		{name: "http LOCALHOST", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://LOCALHOST"}, wantURL: "http://LOCALHOST"},
		{name: "http remote host", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://example.com"}, wantErr: "use https"},
		{name: "http private address", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://10.0.0.1:8080"}, wantErr: "use https"},
		{name: "http localhost lookalike", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://localhost.example.com"}, wantErr: "use https"},
		{name: "ftp", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "ftp://example.com"}, wantErr: `scheme "ftp"`},
		{name: "port without host", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://:443"}, wantErr: "want a URL"},
		{name: "http port without host", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://:8080"}, wantErr: "want a URL"},
		{name: "scheme only", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://"}, wantErr: "want a URL"},
		{name: "no scheme", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "api.smileidentity.com"}, wantErr: "want a URL"},
		{name: "user info", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://bob:hunter2@example.com"}, wantErr: "user info", notInErr: "hunter2"},
		{name: "query", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://example.com/?x=1"}, wantErr: "query"},
		{name: "fragment", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://example.com/#f"}, wantErr: "fragment"},
		{name: "password, unparseable", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://bob:hunter2@exa mple.com:x"}, wantErr: "base URL", notInErr: "hunter2"},
		{name: "password, bad escape", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://bob:hunter2@example.com/%zz"}, wantErr: "base URL", notInErr: "hunter2"},
		{name: "password, no host", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://bob:hunter2@:443"}, wantErr: "base URL", notInErr: "hunter2"},
		{name: "password, no scheme", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "bob:hunter2@example.com"}, wantErr: "want a URL", notInErr: "hunter2"},
		{name: "password, http remote", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "http://bob:hunter2@example.com"}, wantErr: "base URL", notInErr: "hunter2"},
		{name: "password, ftp", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "ftp://bob:hunter2@example.com"}, wantErr: "base URL", notInErr: "hunter2"},
		{name: "token in the query", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://example.com/?token=hunter2"}, wantErr: "query", notInErr: "hunter2"},
		{name: "unparseable", cfg: smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, BaseURL: "https://exa mple.com:x"}, wantErr: "base URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			err := cfg.Check()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if cfg.BaseURL != c.wantURL {
					t.Errorf("BaseURL = %q, want %q", cfg.BaseURL, c.wantURL)
				}
				if c.wantEnv != "" && cfg.Env != c.wantEnv {
					t.Errorf("Env = %q, want %q", cfg.Env, c.wantEnv)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted %+v; want an error containing %q", c.cfg, c.wantErr)
			}
			if !errors.Is(err, smileid.ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q does not contain %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), testkit.APIKey) {
				t.Errorf("error %q contains the API key", err)
			}
			if c.notInErr != "" && strings.Contains(err.Error(), c.notInErr) {
				t.Errorf("error %q contains %q", err, c.notInErr)
			}
			if _, nerr := smileid.NewClient(c.cfg, smileid.ClientOptions{}); nerr == nil {
				t.Errorf("NewClient accepted a configuration Check refuses")
			}
		})
	}
}

// TestConfigNeverShowsKey prints a Config every way a log line might, and
// checks that the key (or its hex form) never comes out.
func TestConfigNeverShowsKey(t *testing.T) {
	cfg := smileid.Config{PartnerID: "p1", APIKey: testkit.APIKey, Env: "sandbox"}
	hexKey := hex.EncodeToString([]byte(testkit.APIKey))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%10.3v"} {
		for _, v := range []any{cfg, &cfg, cfg.APIKey} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, testkit.APIKey) || strings.Contains(strings.ToLower(out), hexKey) {
				t.Errorf("fmt %s of %T shows the key: %s", verb, v, out)
			}
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), testkit.APIKey) {
		t.Errorf("JSON of a Config shows the key: %s", b)
	}
	if !strings.Contains(string(b), "redacted") {
		t.Errorf("JSON of a Config = %s, want the key shown as redacted", b)
	}
	// The key is still there for signing.
	if string(cfg.APIKey) != testkit.APIKey {
		t.Fatalf("APIKey lost its value")
	}
}
