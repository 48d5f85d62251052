//go:build unix

package main

// End-to-end tests of hostile manifests and photos (issue 5): huge fields,
// bytes that are not text, ragged and multi-line records, photos that are
// folders, devices, pipes, empty or at the size limit.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHostileManifest: validate and run go through a manifest of hostile
// rows without hanging or panicking; every row is accounted for with the
// expected outcome, and the good rows among them are enrolled.
func TestHostileManifest(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	dir := c.Dir

	e2eWriteFile(t, filepath.Join(dir, "ok.jpg"), e2eJPEG(t, 1))
	e2eWriteFile(t, filepath.Join(dir, "empty.jpg"), nil)
	five := make([]byte, 5<<20) // exactly the limit: a JPEG start, then padding
	copy(five, e2eJPEG(t, 2))
	e2eWriteFile(t, filepath.Join(dir, "five.jpg"), five)
	e2eWriteFile(t, filepath.Join(dir, "five1.jpg"), append(five, 0))
	if err := os.Mkdir(filepath.Join(dir, "album"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "album"), filepath.Join(dir, "dirlink.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.jpg"), 0o644); err != nil {
		t.Fatal(err)
	}

	huge := strings.Repeat("x", 1<<20)
	var m bytes.Buffer
	m.WriteString("user_id,user_created_at,photo,note\n")                       // 1
	m.WriteString("h-ok-1,2021-08-12,ok.jpg," + huge + "\n")                    // 2 a 1 MiB field in a column nobody reads
	m.WriteString(huge + ",2021-08-12,ok.jpg,x\n")                              // 3 a 1 MiB user_id
	m.WriteString("h-utf8-\xff\xfe,2021-08-12,ok.jpg,x\n")                      // 4 invalid UTF-8
	m.WriteString("h-nul-\x00-x,2021-08-12,ok.jpg,x\n")                         // 5 a NUL byte
	m.WriteString("h-short,2021-08-12\n")                                       // 6 too few fields
	m.WriteString("h-long,2021-08-12,ok.jpg,a,b,c,d,e,f\n")                     // 7 more fields than the header
	m.WriteString("h-quoted,2021-08-12,ok.jpg,\"one\ntwo, \"\"three\"\"\n\"\n") // 8-10 quoted newlines
	m.WriteString("h-dirlink,2021-08-12,dirlink.jpg,x\n")                       // 11 symlink to a folder
	m.WriteString("h-devzero,2021-08-12,zero.jpg,x\n")                          // 12 symlink to /dev/zero
	m.WriteString("h-fifo,2021-08-12,fifo.jpg,x\n")                             // 13 a named pipe
	m.WriteString("h-empty,2021-08-12,empty.jpg,x\n")                           // 14 zero bytes
	m.WriteString("h-5mib,2021-08-12,five.jpg,x\n")                             // 15 exactly 5 MiB
	m.WriteString("h-5mib1,2021-08-12,five1.jpg,x\n")                           // 16 5 MiB + 1
	m.WriteString("h-bare\"quote,2021-08-12,ok.jpg,x\n")                        // 17 a bare quote
	m.WriteString("h-ok-2,2021-08-12,ok.jpg\n")                                 // 18 still fine after all that
	manifestPath := filepath.Join(dir, "hostile.csv")
	e2eWriteFile(t, manifestPath, m.Bytes())

	bad := map[int]string{ // line: the start of its reason
		3:  "user_id: longer than 128 bytes",
		4:  "row: the user_id field is not valid UTF-8",
		5:  "row: the user_id field contains a NUL byte",
		6:  "row: only 2 fields, so column 3 (photo) is missing",
		7:  "row: 9 fields, the header has 4",
		11: "photo: is a folder",
		12: "photo: is not a regular file (character device)",
		13: "photo: is not a regular file (named pipe)",
		14: "photo: empty file",
		16: "photo: 5242881 bytes, over the 5242880-byte limit",
		17: "row: bare quote in field",
	}
	good := []string{"h-ok-1", "h-quoted", "h-5mib", "h-ok-2"}
	const rows = 15 // lines 2 to 18, the quoted record spanning three

	r := c.Run("validate", "--manifest", manifestPath)
	e2eWantCode(t, r, 1)
	e2eWantReasons(t, r.Stdout, bad, "")
	if !strings.Contains(r.Stdout, "15 rows: 4 valid, 11 invalid\n") {
		t.Errorf("validate count line missing:\n%s", r.Stdout)
	}
	if len(r.Stdout) > 64<<10 {
		t.Errorf("validate printed %d bytes: the 1 MiB field must not be echoed whole", len(r.Stdout))
	}

	r = c.Run("run", "--manifest", manifestPath, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Enrolled: len(good), Rejected: len(bad)})
	e2eWantReasons(t, r.Stderr, bad, "rejected: ")
	if len(r.Stderr) > 64<<10 {
		t.Errorf("run printed %d bytes on stderr: the 1 MiB field must not be echoed whole", len(r.Stderr))
	}
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, good)
	if st.Stats.Requests != len(good) {
		t.Errorf("the sandbox got %d requests, want %d (bad rows are never sent)", st.Stats.Requests, len(good))
	}

	recs := e2eReport(t, c)
	if len(recs) != rows {
		t.Errorf("report lists %d records, want %d", len(recs), rows)
	}
	states := map[string]int{}
	for _, rec := range recs {
		states[rec.State]++
	}
	if states["enrolled"] != len(good) || states["rejected"] != len(bad) {
		t.Errorf("report states %v", states)
	}
	// The same again: the good rows are skipped, the bad ones refused again.
	r = c.Run("run", "--manifest", manifestPath, "--json", "--no-progress", "--rate", "0")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: rows, Skipped: len(good), Rejected: len(bad)})
}

// e2eWantReasons fails the test unless out has, for every line N of bad, a
// line `line N: <user>: <state><reason...>`, and no other `line N:` lines.
func e2eWantReasons(t *testing.T, out string, bad map[int]string, state string) {
	t.Helper()
	seen := map[int]bool{}
	for _, l := range strings.Split(out, "\n") {
		var n int
		if !strings.HasPrefix(l, "line ") {
			continue
		}
		if _, err := fmt.Sscanf(l, "line %d:", &n); err != nil {
			continue
		}
		want, ok := bad[n]
		if !ok {
			t.Errorf("unexpected problem line %q", e2eClip(l))
			continue
		}
		if seen[n] {
			t.Errorf("line %d reported twice", n)
		}
		seen[n] = true
		if !strings.Contains(l, ": "+state+want) {
			t.Errorf("line %d: got %q, want a reason starting %q", n, e2eClip(l), state+want)
		}
	}
	for n := range bad {
		if !seen[n] {
			t.Errorf("line %d not reported:\n%s", n, e2eClip(out))
		}
	}
}

func e2eClip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}
