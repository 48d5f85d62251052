package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"bulkenroll/importer/urlref"
	"bulkenroll/manifest"
	"bulkenroll/store"
)

// DefaultSample is the size of the random sample when none is asked for.
const DefaultSample = 20

// Selection says which users a verify run checks: a random sample of
// Sample users (reproducible with the same Seed, manifest and store), All
// of them, or the Users listed.
type Selection struct {
	Sample int
	Seed   uint64
	All    bool
	Users  []string
}

// String describes the selection, as the run history records it.
func (s Selection) String() string {
	switch {
	case s.All:
		return "all"
	case s.Users != nil:
		return fmt.Sprintf("users %d", len(s.Users))
	}
	return fmt.Sprintf("sample %d seed %d", s.Sample, s.Seed)
}

// ReadUsers reads a --users file: one user_id per line, no header; blank
// lines and lines starting with # are ignored, and so are repeats.
func ReadUsers(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	users := []string{}
	for sc.Scan() {
		id := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\uFEFF"))
		if id == "" || strings.HasPrefix(id, "#") || seen[id] {
			continue
		}
		seen[id] = true
		users = append(users, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the users file: %w", err)
	}
	return users, nil
}

// candidate is a manifest user who may be checked, with where its images are.
type candidate struct {
	UserID string
	Line   int
	// Selfie is the selfie's path or URL (to open) and SelfieShown as
	// shown; FromPhoto says it is the enrollment photo (no selfie column).
	Selfie, SelfieShown string
	FromPhoto           bool
	// Liveness are the liveness frames' paths or URLs; LivenessErr says
	// why the column cannot be used.
	Liveness    []string
	LivenessErr string
}

// Skip is a user named for checking but not checked, and why.
type Skip struct {
	UserID string
	Reason string
}

// scanResult is what a pass over the manifest found.
type scanResult struct {
	picked []candidate
	// rows are the candidates of the users in need (resumed jobs), by user_id.
	rows  map[string]candidate
	skips []Skip
	// usedPhoto: some picked user's selfie is its enrollment photo.
	usedPhoto bool
}

// scan reads the manifest once: it picks the users of sel among those the
// store holds as enrolled (leaving out those in exclude), and finds the
// rows of the users in need. A nil sel picks nobody.
func scan(rd *manifest.Reader, st *store.Store, sel *Selection, exclude, need map[string]bool) (scanResult, error) {
	res := scanResult{rows: map[string]candidate{}}
	present := rd.Columns("selfie", "liveness")
	want := map[string]bool{}
	if sel != nil && sel.Users != nil {
		for _, u := range sel.Users {
			want[u] = true
		}
	}
	var rng *rand.Rand
	if sel != nil && !sel.All && sel.Users == nil {
		rng = rand.New(rand.NewPCG(sel.Seed, sel.Seed^0x9e3779b97f4a7c15))
	}
	seen := map[string]bool{}
	eligible := 0
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *manifest.RowError
		if err != nil && !errors.As(err, &re) {
			return res, fmt.Errorf("reading the manifest: %w", err)
		}
		if row.UserID == "" || seen[row.UserID] {
			continue
		}
		seen[row.UserID] = true
		c := candidateOf(rd, row, present)
		if need[row.UserID] {
			res.rows[row.UserID] = c
		}
		if sel == nil || exclude[row.UserID] || (sel.Users != nil && !want[row.UserID]) {
			continue
		}
		if re != nil {
			if want[row.UserID] {
				res.skips = append(res.skips, Skip{row.UserID, fmt.Sprintf("line %d: %v", row.Line, re)})
			}
			continue
		}
		rec, found, err := st.Probe(row.UserID)
		if err != nil {
			return res, err
		}
		if !found || rec.State != store.Enrolled {
			if want[row.UserID] || sel.All {
				state := "not in the store"
				if found {
					state = "the store holds it " + string(rec.State)
				}
				res.skips = append(res.skips, Skip{row.UserID, "not enrolled (" + state + "): not submitted"})
			}
			continue
		}
		switch {
		case rng == nil:
			res.picked = append(res.picked, c)
		case len(res.picked) < sel.Sample:
			res.picked = append(res.picked, c)
		default:
			// Reservoir sampling: every eligible user is equally likely.
			if k := rng.IntN(eligible + 1); k < sel.Sample {
				res.picked[k] = c
			}
		}
		eligible++
	}
	for _, u := range sel.usersOrNil() {
		if !seen[u] {
			res.skips = append(res.skips, Skip{u, "not in the manifest: not submitted"})
		}
	}
	for _, c := range res.picked {
		res.usedPhoto = res.usedPhoto || c.FromPhoto
	}
	return res, nil
}

func (s *Selection) usersOrNil() []string {
	if s == nil {
		return nil
	}
	return s.Users
}

// candidateOf reads a row's images: the selfie column, else the photo;
// the liveness column split on ";".
func candidateOf(rd *manifest.Reader, row manifest.Row, present []bool) candidate {
	c := candidate{UserID: row.UserID, Line: row.Line, Selfie: row.PhotoPath, SelfieShown: row.Photo, FromPhoto: true}
	if present[0] {
		if s := rd.Column(0); s != "" {
			c.Selfie, c.SelfieShown, c.FromPhoto = rd.Resolve(s), urlref.Redact(s), false
		}
	}
	if present[1] {
		for _, f := range strings.Split(rd.Column(1), ";") {
			if f = strings.TrimSpace(f); f != "" {
				c.Liveness = append(c.Liveness, rd.Resolve(f))
			}
		}
		if len(c.Liveness) > maxFrames {
			c.LivenessErr = fmt.Sprintf("liveness: %d frames, at most %d", len(c.Liveness), maxFrames)
		}
	}
	return c
}
