package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// e2eCompareManifest writes, in dir, n compare rows (selfie, 4 to 8
// liveness frames in one ";"-separated column, a comparison image that
// differs from the selfie) and returns the manifest's path and the user IDs.
// mod, if set, may change each row's record (user_id, selfie, liveness,
// comparison_image, comparison_image_type).
func e2eCompareManifest(t testing.TB, dir, prefix string, n int, mod func(i int, rec []string)) (string, []string) {
	t.Helper()
	records := [][]string{{"user_id", "selfie", "liveness", "comparison_image", "comparison_image_type"}}
	ids := make([]string, n)
	// A few shared liveness frames: the rows' selfies and comparison
	// images are their own.
	var frames []string
	for k := range 8 {
		p := fmt.Sprintf("photos/live-%d.jpg", k)
		e2eWriteFile(t, filepath.Join(dir, p), e2eJPEG(t, 200+k))
		frames = append(frames, p)
	}
	types := []string{"ID_PHOTO", "PORTRAIT", "DOCUMENT"}
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i+1)
		ids[i] = id
		selfie := "photos/" + id + "-selfie.jpg"
		comp := "photos/" + id + "-id.png"
		e2eWriteFile(t, filepath.Join(dir, selfie), e2eJPEG(t, i))
		e2eWriteFile(t, filepath.Join(dir, comp), e2ePNG(t, i+1))
		rec := []string{id, selfie, strings.Join(frames[:4+i%5], ";"), comp, types[i%3]}
		if mod != nil {
			mod(i, rec)
		}
		records = append(records, rec)
	}
	path := filepath.Join(dir, prefix+".csv")
	e2eWriteCSV(t, path, records)
	return path, ids
}

// TestE2ECompareValidate: `validate --product compare` refuses a wrong
// manifest with each row's line and reason, and passes a good one.
func TestE2ECompareValidate(t *testing.T) {
	c := e2eNewCLI(t, "")
	path, _ := e2eCompareManifest(t, c.Dir, "cv", 8, func(i int, rec []string) {
		switch i {
		case 1:
			rec[2] = "" // missing liveness
		case 3:
			rec[2] = "photos/live-0.jpg;photos/live-1.jpg;photos/live-2.jpg" // 3 frames
		case 5:
			rec[4] = "SELFIE" // unknown type
		case 6:
			rec[3] = "photos/none.png" // no such comparison image
		case 7:
			rec[0] = "cv-0001" // repeated user_id
		}
	})
	r := c.Run("validate", "--product", "compare", "--manifest", path)
	e2eWantCode(t, r, 1)
	for _, want := range []string{
		"line 3: cv-0002: liveness: missing",
		"line 5: cv-0004: liveness: 3 images, SmartSelfie Compare needs 4 to 8",
		`line 7: cv-0006: comparison_image_type: "SELFIE" is not one of ID_PHOTO, PORTRAIT, DOCUMENT`,
		"line 8: cv-0007: comparison_image: file not found",
		"line 9: cv-0001: user_id: duplicate of line 2",
		"8 rows: 3 valid, 5 invalid",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r)
		}
	}

	good, _ := e2eCompareManifest(t, filepath.Join(c.Dir, "good"), "cg", 6, nil)
	r = c.Run("validate", "--product", "compare", "--manifest", good)
	e2eWantCode(t, r, 0)
	// A compare manifest is not a backfill manifest.
	r = c.Run("validate", "--manifest", good)
	e2eWantCode(t, r, 2)
	if !strings.Contains(r.Stderr, `missing required column`) {
		t.Errorf("a compare manifest validated as backfill:\n%s", r)
	}
	r = c.Run("validate", "--product", "selfie", "--manifest", good)
	e2eWantCode(t, r, 2)
}
