package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"bulkenroll/store"
)

// e2eDamage writes a copy of the store src at dst with change applied to
// every copy of key's record in the file (the live one and stale ones in
// free pages): a record is the key followed by the binary format's
// version byte, as a leaf page keeps a key and its value side by side.
func e2eDamage(t *testing.T, src, dst, key string, change func(data []byte, at int)) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	needle := append([]byte(key), 1)
	n := 0
	for i := 0; ; {
		j := bytes.Index(data[i:], needle)
		if j < 0 {
			break
		}
		change(data, i+j)
		i += j + len(needle)
		n++
	}
	if n == 0 {
		t.Fatalf("no record of %s in the store", key)
	}
	e2eWriteFile(t, dst, data)
}

// TestE2EDamagedStore: a changed byte in a record's value or key, or a
// zeroed page of records, is found by run, run --dry-run, status and
// report before anything is written or sent: exit 2, a message naming the
// user and saying how to go on, no goroutine dump, the file unchanged.
// report --salvage then lists every record still readable, exit 2.
func TestE2EDamagedStore(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, ids := e2eManifest(t, c.Dir, "dmg", 60)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)
	more, _ := e2eManifest(t, c.Dir, "dmg", 80) // 20 users a run would send
	const victim = "dmg-0031"
	page := os.Getpagesize()
	cases := []struct {
		name     string
		change   func(data []byte, at int)
		names    string // what the message must name
		salvaged int    // records report --salvage lists
	}{
		{"value", func(d []byte, at int) { d[at+len(victim)+1] ^= 0x07 }, victim, 59},
		{"key", func(d []byte, at int) { d[at+len(victim)-1] ^= 0x20 }, "dmg-003\x11", 59},
		{"page", func(d []byte, at int) { p := at / page * page; clear(d[p : p+page]) }, "", -1},
	}
	for _, tc := range cases {
		path := filepath.Join(c.Dir, tc.name+".db")
		e2eDamage(t, c.Store(), path, victim, tc.change)
		sum := e2eSHA256(t, path)
		requests := sb.State(t).Stats.Requests
		for _, args := range [][]string{
			{"run", "--manifest", more, "--no-progress", "--rate", "0"},
			{"run", "--manifest", more, "--no-progress", "--dry-run"},
			{"status"},
			{"status", "--json"},
			{"report"},
			{"report", "--manifest", more},
		} {
			r := c.Run(append(args, "--store", path)...)
			e2eWantCode(t, r, 2)
			for _, want := range []string{path, "damaged", "report --salvage"} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("%s: %v: stderr does not say %q:\n%s", tc.name, args, want, r.Stderr)
				}
			}
			if tc.names != "" && !strings.Contains(r.Stderr, strconv.Quote(tc.names)) {
				t.Errorf("%s: %v: stderr does not name user %q:\n%s", tc.name, args, tc.names, r.Stderr)
			}
			if strings.Contains(r.Stderr, "goroutine") || strings.Contains(r.Stderr, "panic") {
				t.Errorf("%s: %v: a panic:\n%s", tc.name, args, r.Stderr)
			}
			if got := e2eSHA256(t, path); got != sum {
				t.Fatalf("%s: %v changed the file", tc.name, args)
			}
		}
		if n := sb.State(t).Stats.Requests; n != requests {
			t.Errorf("%s: commands on a damaged store sent %d requests", tc.name, n-requests)
		}

		r := c.Run("report", "--salvage", "--format", "jsonl", "--store", path)
		e2eWantCode(t, r, 2)
		var listed []reportRecord
		dec := json.NewDecoder(strings.NewReader(r.Stdout))
		for dec.More() {
			var rec reportRecord
			if err := dec.Decode(&rec); err != nil {
				t.Fatalf("%s: salvage output: %v\n%s", tc.name, err, r)
			}
			if rec.State != "enrolled" || !strings.HasPrefix(rec.UserID, "dmg-") || rec.UserID == victim {
				t.Errorf("%s: salvage lists %+v", tc.name, rec)
			}
			listed = append(listed, rec)
		}
		switch {
		case tc.salvaged >= 0 && len(listed) != tc.salvaged:
			t.Errorf("%s: salvage lists %d records, want %d", tc.name, len(listed), tc.salvaged)
		case len(listed) == 0 || len(listed) >= len(ids):
			t.Errorf("%s: salvage lists %d records of %d", tc.name, len(listed), len(ids))
		}
		if !strings.Contains(r.Stderr, "could not be read") || strings.Contains(r.Stderr, "goroutine") {
			t.Errorf("%s: salvage's stderr:\n%s", tc.name, r.Stderr)
		}
		if got := e2eSHA256(t, path); got != sum {
			t.Fatalf("%s: salvage changed the file", tc.name)
		}
	}

	// The intact store: salvage lists everything, exit 0.
	r := c.Run("report", "--salvage", "--format", "jsonl")
	e2eWantCode(t, r, 0)
	if n := strings.Count(r.Stdout, "\n"); n != len(ids) {
		t.Errorf("salvage of an intact store lists %d records, want %d", n, len(ids))
	}
}

// TestE2EOldStore: a store whose records the first versions wrote (JSON,
// with a "seen" bucket) opens, its enrolled users are not sent again, new
// users are, and report reads every record.
func TestE2EOldStore(t *testing.T) {
	t.Parallel()
	sb := e2eStartSandbox(t)
	c := e2eNewCLI(t, sb.URL)
	m, _ := e2eManifest(t, c.Dir, "old", 30)
	e2eWantCode(t, c.Run("run", "--manifest", m, "--no-progress", "--rate", "0"), 0)

	// Rewrite every record as the first versions stored it.
	st, err := store.Open(c.Store(), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []store.Record
	if err := st.Each("", func(r store.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := bolt.Open(c.Store(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Delete([]byte("records")); err != nil {
			return err
		}
		seen, err := tx.CreateBucketIfNotExists([]byte("seen"))
		if err != nil {
			return err
		}
		for _, r := range recs {
			v, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("users")).Put([]byte(r.UserID), v); err != nil {
				return err
			}
			if err := seen.Put([]byte(r.UserID), []byte{1, 2}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 30 {
		t.Fatalf("%d records, want 30", len(recs))
	}

	e2eWantCode(t, c.Run("status"), 0)
	before := e2eReportByUser(t, c)
	requests := sb.State(t).Stats.Requests
	more, ids := e2eManifest(t, c.Dir, "old", 45)
	r := c.Run("run", "--manifest", more, "--no-progress", "--rate", "0", "--json")
	e2eWantCode(t, r, 0)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 45, Enrolled: 15, Skipped: 30})
	if n := sb.State(t).Stats.Requests - requests; n != 15 {
		t.Errorf("the run on an old store sent %d requests, want 15", n)
	}
	e2eWantEnrolledOnce(t, sb.State(t), ids)
	after := e2eReportByUser(t, c)
	for id, rec := range before {
		if after[id] != rec {
			t.Errorf("%s: %+v before the upgrade, %+v after", id, rec, after[id])
		}
	}
	e2eWantAllEnrolled(t, c, ids)
}
