package main

import (
	"encoding/json"
	"strings"
	"testing"

	"bulkenroll/store"
)

// TestStatusEndNotRecorded: a run whose end the store could not record (a
// full disk) left a last snapshot marked done: status says the run ended
// without recording its end, never that it was killed; a snapshot not
// marked done, of a process that is gone, is still a killed run.
func TestStatusEndNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name       string
		done       bool
		endErr     string
		want, not  string
		jsonKilled bool
	}{
		{"end not recorded", true, "store x could not be written: write x: no space left on device",
			"ended without recording its end", "killed", false},
		{"done, no reason given", true, "", "the store could not be written", "killed", false},
		{"killed", false, "", "was killed", "without recording", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, r2 := opsStore(t, false)
			l := liveOf(t, r2)
			l.Done, l.EndNotRecorded, l.Unsaved = tc.done, tc.endErr, 7
			if !tc.done {
				l.PID = 1 << 30 // no such process
			}
			if err := store.WriteLive(path, l); err != nil {
				t.Fatal(err)
			}
			out, err := runStatus(t, path, false)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			if !strings.Contains(out, tc.want) || strings.Contains(out, tc.not) {
				t.Errorf("status: want %q and not %q:\n%s", tc.want, tc.not, out)
			}
			if tc.endErr != "" && !strings.Contains(out, tc.endErr) {
				t.Errorf("status does not say why the end was not recorded:\n%s", out)
			}
			if tc.done && !strings.Contains(out, "7 of them because their results could not be saved") {
				t.Errorf("status does not count the rows not saved:\n%s", out)
			}
			js, err := runStatus(t, path, true)
			if err != nil {
				t.Fatalf("status --json: %v", err)
			}
			var s statusJSON
			if err := json.Unmarshal([]byte(js), &s); err != nil {
				t.Fatalf("status --json: %v\n%s", err, js)
			}
			if s.Live == nil || s.Live.Killed != tc.jsonKilled || s.Live.EndNotRecorded != tc.endErr {
				t.Errorf("status --json live = %+v, want killed %v, end_not_recorded %q", s.Live, tc.jsonKilled, tc.endErr)
			}
		})
	}
}
