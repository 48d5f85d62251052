//go:build unix

package main

// End-to-end tests of secrets and file modes (issue 5): the API key never
// appears in any output or file, and the store and rejects files are
// private.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsNeverLeak: with a distinctive key, an import, a refused key
// (2205), a transport failure, a key file and a malformed key leave the key
// in none of: standard output and error, the store file, the rejects file,
// report and status outputs.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const key = "sk-TEST-do-not-print-0123456789abcdef"
	leaks := []string{key, "do-not-print", "0123456789abcdef"}

	sb := e2eStartSandboxKey(t, e2ePartner, key)
	otherKey := e2eStartSandboxKey(t, e2ePartner, "some-other-key")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	cases := []struct {
		name    string
		baseURL string
		keyFile string // key file contents; SMILE_API_KEY is then unset
		code    int
	}{
		{"import", sb.URL, "", 1},
		{"2205", otherKey.URL, "", 2},
		{"transport failure", closedURL, "", 1},
		{"key file", sb.URL, key + "\n", 1},
		{"malformed key file", sb.URL, key + "\x07\n", 2},
	}
	// The cases run in parallel; the group ends when all have.
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c := e2eNewCLI(t, tc.baseURL)
				c.Env["SMILE_API_KEY"] = key
				var outputs []string
				check := func(what, s string) {
					t.Helper()
					for _, l := range leaks {
						if strings.Contains(s, l) {
							t.Errorf("%s contains the key (%q):\n%s", what, l, e2eClip(s))
						}
					}
				}
				args := []string{"run", "--rate", "0", "--retries", "1", "--json"}
				if tc.keyFile != "" {
					delete(c.Env, "SMILE_API_KEY")
					kf := filepath.Join(c.Dir, "key")
					if err := os.WriteFile(kf, []byte(tc.keyFile), 0o600); err != nil {
						t.Fatal(err)
					}
					args = append(args, "--api-key-file", kf)
				}
				m, _ := e2eManifest(t, c.Dir, "secret", 3)
				data, _ := os.ReadFile(m)
				e2eWriteFile(t, m, append(data, "secret-bad,2021-08-12,photos/none.jpg\n"...))
				rejects := filepath.Join(c.Dir, "rejects.csv")
				args = append(args, "--manifest", m, "--rejects", rejects)

				r := c.Run(args...)
				e2eWantCode(t, r, tc.code)
				outputs = append(outputs, r.Stdout, r.Stderr)
				r = c.Run(append(args, "--dry-run")...)
				outputs = append(outputs, r.Stdout, r.Stderr)
				for _, cmd := range [][]string{
					{"status"}, {"status", "--json"},
					{"report"}, {"report", "--format", "jsonl"},
				} {
					r := c.Run(cmd...)
					outputs = append(outputs, r.Stdout, r.Stderr)
				}
				for i, out := range outputs {
					check("output "+string(rune('a'+i)), out)
				}
				for _, f := range []string{c.Store(), rejects} {
					data, err := os.ReadFile(f)
					if os.IsNotExist(err) && tc.code == 2 {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					check(filepath.Base(f), string(data))
				}
				entries, _ := os.ReadDir(c.Dir)
				for _, e := range entries {
					if data, err := os.ReadFile(filepath.Join(c.Dir, e.Name())); err == nil && e.Name() != "key" {
						check(e.Name(), string(data))
					}
				}
			})
		}
	})
	check := func(what, s string) {
		for _, l := range leaks {
			if strings.Contains(s, l) {
				t.Errorf("%s contains the key:\n%s", what, s)
			}
		}
	}
	check("the sandbox's output", sb.Output())
	check("the other sandbox's output", otherKey.Output())
}

// TestSecretsFileModes: the store and the rejects file are created with
// mode 0600.
func TestSecretsFileModes(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "mode", 2)
	data, _ := os.ReadFile(m)
	e2eWriteFile(t, m, append(data, "mode-bad,2021-08-12,photos/none.jpg\n"...))
	rejects := filepath.Join(c.Dir, "rejects.csv")
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rejects", rejects), 1)
	for _, f := range []string{c.Store(), rejects} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), perm)
		}
	}
}
