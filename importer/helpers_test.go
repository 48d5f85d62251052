package importer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"bulkenroll/importer"
	"bulkenroll/importer/event"
	"bulkenroll/importer/testkit"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// Credentials shared by the tests. The key is distinctive so that a leak of
// it into any message can be searched for.
const (
	testPartner = testkit.Partner
	testKey     = testkit.APIKey
)

// photoBytes returns a small, valid JPEG or PNG image (testkit.Photo).
func photoBytes(t testing.TB, format string, seed int) []byte { return testkit.Photo(t, format, seed) }

// writeFile writes data to path, creating its folder (testkit.WriteFile).
func writeFile(t testing.TB, path string, data []byte) { testkit.WriteFile(t, path, data) }

// sha256File returns the hex SHA-256 of a file's bytes.
func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// mrow is one manifest row as written.
type mrow struct {
	id, created, photo string
}

// fixture is a folder holding a manifest and its photos.
type fixture struct {
	dir  string
	rows []mrow
}

// newFixture makes n users user-0001.. with a JPEG (odd) or PNG (even) photo
// each, all valid, under a fresh temporary folder.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	for i := 1; i <= n; i++ {
		f.addUser(t, fmt.Sprintf("user-%04d", i), i)
	}
	return f
}

// addUser adds a valid row with a fresh photo.
func (f *fixture) addUser(t testing.TB, id string, seed int) {
	t.Helper()
	format, ext := "jpeg", ".jpg"
	if seed%2 == 0 {
		format, ext = "png", ".png"
	}
	name := filepath.Join("photos", fmt.Sprintf("p%04d%s", seed, ext))
	writeFile(t, filepath.Join(f.dir, name), photoBytes(t, format, seed))
	f.rows = append(f.rows, mrow{id: id, created: "2021-08-12T15:14:43Z", photo: name})
}

// ids returns the user IDs of the fixture's rows, in order.
func (f *fixture) ids() []string {
	out := make([]string, len(f.rows))
	for i, r := range f.rows {
		out[i] = r.id
	}
	return out
}

// photoPath returns the absolute path of row i's photo.
func (f *fixture) photoPath(i int) string { return filepath.Join(f.dir, f.rows[i].photo) }

// write writes the manifest (header first, so row i is on line i+2) and
// returns its path.
func (f *fixture) write(t testing.TB) string {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"user_id", "user_created_at", "photo"})
	for _, r := range f.rows {
		_ = w.Write([]string{r.id, r.created, r.photo})
	}
	w.Flush()
	path := filepath.Join(f.dir, "manifest.csv")
	writeFile(t, path, buf.Bytes())
	return path
}

// openManifest opens a manifest and closes it when the test ends.
func openManifest(t testing.TB, path string) *manifest.Reader {
	t.Helper()
	rd, err := manifest.Open(path)
	if err != nil {
		t.Fatalf("opening the manifest: %v", err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}

// newStore opens a fresh store in a temporary folder, closed when the test ends.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bulkenroll.db"), store.Options{})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return st
}

// fastOptions are run options with short retry waits.
func fastOptions() importer.Options {
	return importer.Options{
		Workers:     4,
		Retries:     3,
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
		Grace:       5 * time.Second,
		// The tests' manifests are files: an early stop counts their unread rows.
		ManifestIsFile: true,
	}
}

// run imports the manifest at path into st through sub.
func run(t testing.TB, ctx context.Context, path string, st *store.Store, sub importer.Submitter, opts importer.Options) (importer.Summary, error) {
	t.Helper()
	rd := openManifest(t, path)
	if opts.Manifest == "" {
		opts.Manifest = path
	}
	return importer.Run(ctx, rd, st, sub, opts)
}

// records returns every record of st in key order.
func records(t testing.TB, st *store.Store) []store.Record {
	t.Helper()
	var out []store.Record
	if err := st.Each("", func(r store.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return out
}

// userRecord returns the record of user id, failing the test if it is absent.
func userRecord(t testing.TB, st *store.Store, id string) store.Record {
	t.Helper()
	rec, ok, err := st.Get(id)
	if err != nil || !ok {
		t.Fatalf("Get(%q) = found %v, %v", id, ok, err)
	}
	return rec
}

// recordOrNone returns the record of user id; a row the run never reached
// has none (the zero record, pending with no attempt).
func recordOrNone(t testing.TB, st *store.Store, id string) store.Record {
	t.Helper()
	rec, ok, err := st.Get(id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	if !ok {
		return store.Record{UserID: id, State: store.Pending}
	}
	return rec
}

// wantSummary compares the counts of a summary, ignoring Seconds and RunID.
func wantSummary(t testing.TB, got, want importer.Summary) {
	t.Helper()
	got.Seconds, got.RunID, want.Seconds, want.RunID = 0, 0, 0, 0
	got.Stats, want.Stats = event.Stats{}, event.Stats{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("summary = %+v\nwant      %+v", got, want)
	}
}

// readCSV parses CSV text.
func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV %q: %v", b, err)
	}
	return recs
}
