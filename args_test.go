package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestStrayWordsRefusedBeforeAction: every command refuses a positional
// word as a usage error naming it, without running its action (which would
// fail otherwise: m.csv does not exist).
func TestStrayWordsRefusedBeforeAction(t *testing.T) {
	cases := [][]string{
		{"run", "--manifest", "m.csv", "now", "--dry-run"},
		{"run", "--manifest", "my", "manifest.csv"},
		{"run", "--manifest", "m.csv", "--", "--dry-run"},
		{"validate", "--manifest", "m.csv", "now"},
		{"status", "now"},
		{"report", "now"},
		{"sandbox", "now"},
		{"run", "help"},
	}
	for _, args := range cases {
		var out, errOut bytes.Buffer
		app := newApp(streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
		err := app.RunContext(context.Background(), append([]string{"bulkenroll"}, args...))
		var cu *commandUsage
		var ue *usageError
		switch {
		case !errors.As(err, &cu) || !errors.As(err, &ue):
			t.Errorf("%q: err %v, want a usage error", args, err)
		case cu.Command != args[0] || cu.Usage == "":
			t.Errorf("%q: usage of %q %q, want the usage of %s", args, cu.Command, cu.Usage, args[0])
		case !strings.Contains(err.Error(), "unexpected argument"):
			t.Errorf("%q: %v", args, err)
		}
		if exitCode(err) != 2 {
			t.Errorf("%q: exit %d, want 2", args, exitCode(err))
		}
		if out.Len() != 0 || errOut.Len() != 0 {
			t.Errorf("%q: the app printed %q / %q; main prints usage errors", args, out.String(), errOut.String())
		}
	}
}

// TestStrictLeavesNoRequiredFlag: urfave/cli's own check of a required
// flag prints the whole help on standard output; strict takes it over.
func TestStrictLeavesNoRequiredFlag(t *testing.T) {
	app := newApp(streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	for _, c := range app.Commands {
		if c.OnUsageError == nil || !c.HideHelpCommand {
			t.Errorf("%s: not made strict", c.Name)
		}
		for _, f := range c.Flags {
			if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
				t.Errorf("%s: flag %v still required by urfave/cli", c.Name, f.Names())
			}
		}
	}
}

func TestUsageErrorsPrintNothingThemselves(t *testing.T) {
	cases := []struct {
		args []string
		want string
		cmd  string
	}{
		{[]string{"run"}, "--manifest is required", "run"},
		{[]string{"run", "--manifest", ""}, "--manifest is empty", "run"},
		{[]string{"run", "--manifest", "x", "--bogus"}, "unknown flag --bogus", "run"},
		{[]string{"run", "-m", "x", "--dry-rn"}, "unknown flag --dry-rn (did you mean --dry-run?)", "run"},
		{[]string{"run", "-m", "x", "--workers", "x"}, `--workers "x": want auto or a number from 1 to 256`, "run"},
		{[]string{"run", "-m", "x", "--workers", "0"}, `--workers "0": want auto or a number from 1 to 256`, "run"},
		{[]string{"validate", "-m"}, "flag needs an argument: -m", "validate"},
		{[]string{"report", "--format", "xml"}, `--format "xml": want csv or jsonl`, "report"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, ""},
		{[]string{"stauts"}, `unknown command "stauts" (did you mean status?)`, ""},
		{[]string{}, "no command given", ""},
		{[]string{"--bogus"}, "unknown flag --bogus", ""},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		err := newApp(streams{In: strings.NewReader(""), Out: &out, Err: &errOut}).RunContext(context.Background(), append([]string{"bulkenroll"}, tc.args...))
		var cu *commandUsage
		if !errors.As(err, &cu) || err.Error() != tc.want || cu.Command != tc.cmd {
			t.Errorf("%q: err %v (%#v), want %q of command %q", tc.args, err, cu, tc.want, tc.cmd)
		}
		if exitCode(err) != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, exitCode(err))
		}
		if out.Len() != 0 || errOut.Len() != 0 {
			t.Errorf("%q: the app printed %q / %q", tc.args, out.String(), errOut.String())
		}
	}
}

func TestHelpOnStandardOutput(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"run", "-h", "now"}, {"--help", "frobnicate"}} {
		var out, errOut bytes.Buffer
		err := newApp(streams{In: strings.NewReader(""), Out: &out, Err: &errOut}).RunContext(context.Background(), append([]string{"bulkenroll"}, args...))
		if err != nil || !strings.Contains(out.String(), "USAGE:") || errOut.Len() != 0 {
			t.Errorf("%q: err %v, stdout %d bytes, stderr %q; want the help on standard output", args, err, out.Len(), errOut.String())
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"run", "validate", "status", "report", "sandbox"}
	for word, want := range map[string]string{
		"rnu": "run", "ru": "run", "runn": "run", "vaildate": "validate", "valid": "validate",
		"stats": "status", "stat": "status", "reprot": "report", "sandbx": "sandbox", "RUN": "run",
		"frobnicate": "", "x": "", "": "", "go": "", "help": "",
	} {
		if got := nearest(word, names); got != want {
			t.Errorf("nearest(%q) = %q, want %q", word, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"run", "run", 0}, {"", "abc", 3}, {"rnu", "run", 1}, {"kitten", "sitting", 3},
		{"dyr-run", "dry-run", 1}, {"status", "stats", 1}, {"ab", "ba", 1}, {"abc", "ca", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestLogFormatOf(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", ""},
		{nil, "json", "json"},
		{[]string{"run", "--log-format", "json"}, "", "json"},
		{[]string{"run", "--log-format=json"}, "", "json"},
		{[]string{"run", "-log-format", "json", "now"}, "", "json"},
		{[]string{"run", "now", "--log-format", "json"}, "", "json"},
		{[]string{"run", "--log-format", "text"}, "json", "text"},
		{[]string{"run", "--log-format", "json", "--log-format", "text"}, "", "text"},
		{[]string{"run", "--", "--log-format", "json"}, "", ""},
		{[]string{"run", "--log-format"}, "json", "json"},
		{[]string{"run", "--manifest", "log-format"}, "", ""},
	} {
		if got := logFormatOf(tc.args, tc.env); got != tc.want {
			t.Errorf("logFormatOf(%q, %q) = %q, want %q", tc.args, tc.env, got, tc.want)
		}
	}
}

// TestConsoleJSON: in JSON mode, every message of main's is one JSON object
// on one line.
func TestConsoleJSON(t *testing.T) {
	var b bytes.Buffer
	con := newConsole(&b, "json", true)
	con.fail(&commandUsage{Command: "run", Usage: "bulkenroll run --manifest FILE", Err: usagef("unexpected argument %q", "now")}, 2)
	con.fail(fmt.Errorf("store x: locked\n  try again later"), 2)
	con.interrupted(syscall.SIGTERM)
	con.quitting(syscall.SIGINT)
	con.warn("writing the metrics file", errors.New("disk full"))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(lines), b.String())
	}
	wantMsg := []string{"usage error", "error", "interrupted: finishing requests in flight and saving (signal again to quit at once)",
		"quitting at once; the store is consistent, the next run resumes", "writing the metrics file"}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		if rec["msg"] != wantMsg[i] {
			t.Errorf("line %d: msg %v, want %q", i+1, rec["msg"], wantMsg[i])
		}
		if i == 0 && (rec["command"] != "run" || rec["help"] != "bulkenroll run --help" || rec["exit_code"] != 2.0) {
			t.Errorf("usage record %v", rec)
		}
	}

	// What a library logs with the log package comes as JSON too.
	b.Reset()
	prevSlog, prevOut, prevFlags := slog.Default(), log.Writer(), log.Flags()
	defer func() { // SetDefault of the original handler leaves the log package as it is
		slog.SetDefault(prevSlog)
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	}()
	con.install()
	log.Printf("http: TLS handshake error from %s", "127.0.0.1:1")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "http: TLS handshake error from 127.0.0.1:1" {
		t.Errorf("log.Printf after install: %q (%v)", b.String(), err)
	}

	b.Reset()
	con = newConsole(&b, "text", false)
	con.interrupted(syscall.SIGTERM)
	if strings.HasPrefix(b.String(), "\n") {
		t.Errorf("text mode without a terminal starts with a blank line: %q", b.String())
	}
	b.Reset()
	con.fail(&commandUsage{Command: "run", Usage: "bulkenroll run --manifest FILE", Err: usagef("unexpected argument %q", "now")}, 2)
	want := "bulkenroll run: unexpected argument \"now\"\nusage: bulkenroll run --manifest FILE\nsee 'bulkenroll run --help'\n"
	if b.String() != want {
		t.Errorf("text usage error %q, want %q", b.String(), want)
	}
}

func TestCheckOutputFile(t *testing.T) {
	dir := t.TempDir()
	if err := checkOutputFile("--metrics-file", filepath.Join(dir, "m.prom"), false); err != nil {
		t.Errorf("a writable folder: %v", err)
	}
	for _, path := range []string{filepath.Join(dir, "missing", "m.prom"), dir} {
		err := checkOutputFile("--metrics-file", path, false)
		if err == nil || !strings.Contains(err.Error(), "--metrics-file "+path) || exitCode(err) != 2 {
			t.Errorf("%s: %v, want an error naming the flag and the path (exit 2)", path, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".bulkenroll-check-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := checkOutputFile("--metrics-file", filepath.Join(ro, "m.prom"), false); err == nil {
			t.Errorf("a read-only folder passed the check")
		}
		// A read-only rejects file is refused, and not truncated.
		rej := filepath.Join(dir, "rejects.csv")
		if err := os.WriteFile(rej, []byte("kept"), 0o400); err != nil {
			t.Fatal(err)
		}
		if err := checkOutputFile("--rejects", rej, true); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("a read-only rejects file: %v, want permission denied", err)
		}
	}
	// A writable one is accepted, and not truncated either.
	rej := filepath.Join(dir, "rejects-ok.csv")
	if err := os.WriteFile(rej, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkOutputFile("--rejects", rej, true); err != nil {
		t.Errorf("a writable rejects file: %v", err)
	}
	if b, _ := os.ReadFile(rej); string(b) != "kept" {
		t.Errorf("the check changed the file: %q", b)
	}
	// Devices are left to the command.
	if err := checkOutputFile("--rejects", os.DevNull, true); err != nil {
		t.Errorf("%s: %v", os.DevNull, err)
	}
}
