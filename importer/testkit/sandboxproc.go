package testkit

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bulkenroll/importer/smileid/sandbox"
)

// SandboxProc is a `bulkenroll sandbox` process listening on loopback.
type SandboxProc struct {
	// URL is where it listens (http://127.0.0.1:PORT).
	URL  string
	proc *Proc
}

// StartSandbox runs `bin sandbox --addr 127.0.0.1:0` with extra flags
// (--latency 50ms, ...), accepting partner and key, waits until it says where
// it listens, and stops it (SIGTERM) when the test ends, failing the test if
// it crashed or raced.
func StartSandbox(t testing.TB, bin, partner, key string, flags ...string) *SandboxProc {
	t.Helper()
	w := &listenWatcher{url: make(chan string, 1)}
	p := Start(t, Cmd{
		Path:   bin,
		Args:   append([]string{"sandbox", "--addr", "127.0.0.1:0"}, flags...),
		Dir:    t.TempDir(),
		Env:    []string{"SMILE_PARTNER_ID=" + partner, "SMILE_API_KEY=" + key, "PATH=/usr/bin:/bin", "GORACE=halt_on_error=1 atexit_sleep_ms=50"},
		Stdout: w,
	})
	s := &SandboxProc{proc: p}
	t.Cleanup(func() { s.Stop(t) })
	select {
	case s.URL = <-w.url:
	case <-p.Done():
		t.Fatalf("the sandbox exited before listening:\n%s", p.Result())
	case <-time.After(30 * time.Second):
		p.Kill()
		t.Fatalf("the sandbox did not say where it listens within 30s:\n%s", p.Result())
	}
	if u, err := url.Parse(s.URL); err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		t.Fatalf("the sandbox listens on %q, want http://127.0.0.1:PORT", s.URL)
	}
	return s
}

// listenWatcher finds the line "sandbox listening on URL" in the output.
type listenWatcher struct {
	mu   sync.Mutex
	line []byte
	sent bool
	url  chan string
}

func (w *listenWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if u, ok := strings.CutPrefix(string(w.line[:i]), "sandbox listening on "); ok {
			w.url <- strings.TrimSpace(u)
			w.sent, w.line = true, nil
			break
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

// Proc is the sandbox's process.
func (s *SandboxProc) Proc() *Proc { return s.proc }

// Stop ends the sandbox with SIGTERM (SIGKILL if it lingers) and checks that
// it did not crash. It is called when the test ends.
func (s *SandboxProc) Stop(t testing.TB) {
	if s.proc.Exited() {
		return
	}
	s.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.done:
	case <-time.After(15 * time.Second):
		s.proc.Kill()
		t.Errorf("the sandbox did not stop within 15s of SIGTERM")
	}
	r := s.proc.Result()
	if os.Getenv("BULKENROLL_E2E_TIMING") != "" {
		var cpu time.Duration
		if st := s.proc.State(); st != nil {
			cpu = st.UserTime() + st.SystemTime()
		}
		t.Logf("TIMING sandbox %s cpu %s", r.Elapsed, cpu)
	}
	for _, bad := range []string{"panic", "DATA RACE", "fatal error"} {
		if strings.Contains(r.Stderr, bad) {
			t.Errorf("the sandbox's output contains %q:\n%s", bad, r)
		}
	}
}

// Output is what the sandbox printed so far, both streams.
func (s *SandboxProc) Output() string { return s.proc.Stdout() + s.proc.Stderr() }

// State reads GET /sandbox/state.
func (s *SandboxProc) State(t testing.TB) sandbox.State {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.URL + "/sandbox/state")
	if err != nil {
		t.Fatalf("sandbox state: %v\nthe sandbox's output:\n%s", err, s.Output())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox state: HTTP %d", resp.StatusCode)
	}
	var st sandbox.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("sandbox state: %v", err)
	}
	return st
}

// Control changes the sandbox's settings while it runs: body is the JSON of
// a sandbox.Control (`{"latency":"0s"}`), posted to sandbox.ControlPath.
func (s *SandboxProc) Control(t testing.TB, body string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(s.URL+sandbox.ControlPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("sandbox control: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox control %s: HTTP %d", body, resp.StatusCode)
	}
}
