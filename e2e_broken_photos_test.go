package main

import (
	"bulkenroll/importer/testkit"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestPhotosTruncatedNeverSent: an 800x600 JPEG cut in half (streamed: over
// 128 KiB), a small JPEG and a PNG cut in half are reported by validate
// (line, user, field photo, reason) and rejected by run without a request,
// with or without --fix-photos; a remote JPEG cut in half is rejected by
// run as it streams, and never enrolled.
func TestPhotosTruncatedNeverSent(t *testing.T) {
	t.Parallel()
	big := testkit.NoisePhoto(t, "jpeg", 800, 600)
	small := testkit.NoisePhoto(t, "jpeg", 120, 90)
	pngData := testkit.NoisePhoto(t, "png", 200, 150)
	if len(big) <= 128<<10 {
		t.Fatalf("the 800x600 JPEG has %d bytes: want it streamed", len(big))
	}
	dir := t.TempDir()
	rows := []photosRow{
		{id: "good", photo: "good.jpg", data: e2eJPEG(t, 1)},
		{id: "cut-800x600", photo: "cut.jpg", data: big[:len(big)/2], reject: "truncated JPEG: no end-of-image marker"},
		{id: "cut-small", photo: "small.jpg", data: small[:len(small)/2], reject: "truncated JPEG: no end-of-image marker"},
		{id: "cut-png", photo: "cut.png", data: pngData[:len(pngData)/2], reject: "truncated PNG"},
	}
	for _, r := range rows {
		e2eWriteFile(t, filepath.Join(dir, r.photo), r.data)
	}
	manifestPath := filepath.Join(dir, "m.csv")
	photosWriteManifest(t, manifestPath, rows)

	c := photosCLI(t, "http://127.0.0.1:1")
	v := c.Run("validate", "--manifest", manifestPath, "--json")
	e2eWantCode(t, v, 1)
	var doc struct {
		Problems []problem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(v.Stdout), &doc); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, v)
	}
	if len(doc.Problems) != 3 {
		t.Fatalf("validate: %+v, want the 3 cut photos", doc.Problems)
	}
	for i, p := range doc.Problems {
		want := rows[i+1]
		if p.Line != i+3 || p.UserID != want.id || p.Field != "photo" || !strings.Contains(p.Reason, want.reject) {
			t.Errorf("validate: problem %+v, want line %d, %s, photo, %q", p, i+3, want.id, want.reject)
		}
	}
	text := c.Run("validate", "--manifest", manifestPath)
	if !strings.Contains(text.Stdout, "line 3: cut-800x600: photo: truncated JPEG: no end-of-image marker") {
		t.Errorf("validate's text output:\n%s", text.Stdout)
	}

	for _, flags := range [][]string{nil, {"--fix-photos"}} {
		sb := e2eStartSandbox(t)
		c := photosCLI(t, sb.URL)
		args := append([]string{"run", "--manifest", manifestPath, "--rate", "0", "--json", "--no-progress"}, flags...)
		r := c.Run(args...)
		e2eWantCode(t, r, 1)
		e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 4, Enrolled: 1, Rejected: 3})
		st := sb.State(t)
		if st.Stats.Requests != 1 {
			t.Errorf("%v: the sandbox got %d requests, want 1 (the good photo)", flags, st.Stats.Requests)
		}
		e2eWantEnrolledOnce(t, st, []string{"good"})
		recs := e2eReportByUser(t, c)
		for _, row := range rows[1:] {
			if rec := recs[row.id]; rec.State != "rejected" || !strings.Contains(rec.Error, row.reject) {
				t.Errorf("%v: %s is %s (%q), want rejected: %q", flags, row.id, rec.State, rec.Error, row.reject)
			}
		}
	}

	// A remote photo is checked as it streams: cut, its body ends short.
	s3 := photosStartS3(t)
	remote := []photosRow{
		{id: "remote-good", photo: s3.Put(t, "ok.jpg", big)},
		{id: "remote-cut", photo: s3.Put(t, "cut.jpg", big[:len(big)/2])},
	}
	remotePath := filepath.Join(dir, "remote.csv")
	photosWriteManifest(t, remotePath, remote)
	sb := e2eStartSandbox(t)
	rc := photosCLI(t, sb.URL)
	r := rc.Run("run", "--manifest", remotePath, "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 1)
	e2eWantSummary(t, e2eParseSummary(t, r), e2eSummary{Rows: 2, Enrolled: 1, Rejected: 1})
	st := sb.State(t)
	e2eWantEnrolledOnce(t, st, []string{"remote-good"})
	if _, ok := st.Photos["remote-cut"]; ok {
		t.Error("the cut remote photo reached the sandbox's ledger")
	}
	if rec := e2eReportByUser(t, rc)["remote-cut"]; rec.State != "rejected" || !strings.Contains(rec.Error, "truncated JPEG") || rec.Attempts != 0 {
		t.Errorf("remote-cut: %+v", rec)
	}
}

// TestPhotosFixUprightUnchanged: under --fix-photos an upright JPEG is sent
// byte for byte (the sandbox's ledger has its size and dimensions), and so
// is an upright JPEG whose header claims 64 megapixels (it is never
// decoded; a plain run sends it too).
func TestPhotosFixUprightUnchanged(t *testing.T) {
	t.Parallel()
	upright := testkit.NoisePhoto(t, "jpeg", 640, 480)
	huge := testkit.NoisePhoto(t, "jpeg", 64, 48)
	sof := bytes.Index(huge, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(huge[sof+5:], 8000)
	binary.BigEndian.PutUint16(huge[sof+7:], 8000)
	sb := e2eStartSandbox(t)
	c := photosCLI(t, sb.URL)
	e2eWriteFile(t, filepath.Join(c.Dir, "upright.jpg"), upright)
	e2eWriteFile(t, filepath.Join(c.Dir, "huge.jpg"), huge)
	photosWriteManifest(t, filepath.Join(c.Dir, "m.csv"), []photosRow{{id: "upright", photo: "upright.jpg"}, {id: "64mpix", photo: "huge.jpg"}})
	r := c.Run("run", "--manifest", filepath.Join(c.Dir, "m.csv"), "--fix-photos", "--rate", "0", "--json", "--no-progress")
	e2eWantCode(t, r, 0)
	st := sb.State(t)
	if p := st.Photos["upright"]; p.Bytes != int64(len(upright)) || p.Width != 640 || p.Height != 480 || p.Format != "jpeg" {
		t.Errorf("upright: the sandbox got %+v, want the %d-byte 640x480 JPEG unchanged", p, len(upright))
	}
	if p := st.Photos["64mpix"]; p.Bytes != int64(len(huge)) || p.Width != 8000 || p.Height != 8000 {
		t.Errorf("64mpix: the sandbox got %+v, want the %d-byte file unchanged", p, len(huge))
	}
	for id, rec := range e2eReportByUser(t, c) {
		if rec.PhotoNote != "" {
			t.Errorf("%s: photo_note %q", id, rec.PhotoNote)
		}
	}
}
