package manifest

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// compareDir writes small JPEGs a.jpg ... and a GIF into a temporary folder.
func compareDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range []string{"s.jpg", "c.jpg", "l1.jpg", "l2.jpg", "l3.jpg", "l4.jpg", "l5.jpg"} {
		img := image.NewGray(image.Rect(0, 0, 4, 4))
		img.Pix[0] = byte(i)
		var b bytes.Buffer
		jpeg.Encode(&b, img, nil)
		os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "anim.gif"), []byte("GIF89a\x01\x00\x01\x00"), 0o644)
	os.WriteFile(filepath.Join(dir, "cut.jpg"), []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16}, 0o644)
	return dir
}

func TestCompareHeader(t *testing.T) {
	for _, tc := range []struct {
		name, header, want string
	}{
		{"joined", "user_id,selfie,liveness,comparison_image,comparison_image_type", ""},
		{"numbered", "User_ID,selfie,liveness_1,liveness_2,liveness_3,liveness_4,liveness_5,comparison_image,comparison_image_type", ""},
		{"no liveness", "user_id,selfie,comparison_image,comparison_image_type", `missing required column "liveness" (or "liveness_1"`},
		{"3 numbered", "user_id,selfie,liveness_1,liveness_2,liveness_3,comparison_image,comparison_image_type", "3 liveness_N columns"},
		{"both", "user_id,selfie,liveness,liveness_1,comparison_image,comparison_image_type", "use one or the other"},
		{"backfill header", "user_id,user_created_at,photo", `missing required columns "selfie", "comparison_image", "comparison_image_type", "liveness"`},
		{"twice", "user_id,selfie,selfie,liveness,comparison_image,comparison_image_type", `"selfie" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewProductReader(strings.NewReader(tc.header+"\n"), "", ProductCompare)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestCompareValidate reads a compare manifest and checks each row as
// `validate --product compare` does, with the field and reason.
func TestCompareValidate(t *testing.T) {
	dir := compareDir(t)
	csv := strings.Join([]string{
		"user_id,selfie,liveness,comparison_image,comparison_image_type",
		"ok1,s.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,ID_PHOTO",
		"ok2,s.jpg, l1.jpg ; l2.jpg;l3.jpg;l4.jpg;l5.jpg ,c.jpg,DOCUMENT",
		"three,s.jpg,l1.jpg;l2.jpg;l3.jpg,c.jpg,PORTRAIT",
		"none,s.jpg,,c.jpg,PORTRAIT",
		"nine,s.jpg,l1.jpg;l1.jpg;l1.jpg;l1.jpg;l1.jpg;l1.jpg;l1.jpg;l1.jpg;l1.jpg,c.jpg,PORTRAIT",
		"badtype,s.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,SELFIE",
		"notype,s.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,",
		"gif,s.jpg,l1.jpg;l2.jpg;anim.gif;l4.jpg,c.jpg,ID_PHOTO",
		"gone,s.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,nope.jpg,ID_PHOTO",
		"cut,cut.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,ID_PHOTO",
		"stray,s.jpg,l1.jpg;;l3.jpg;l4.jpg;l5.jpg,c.jpg,ID_PHOTO",
		",s.jpg,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,ID_PHOTO",
		"noselfie,,l1.jpg;l2.jpg;l3.jpg;l4.jpg,c.jpg,ID_PHOTO",
	}, "\n") + "\n"
	rd, err := NewProductReader(strings.NewReader(csv), dir, ProductCompare)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ok1":      "",
		"ok2":      "",
		"three":    "liveness: 3 images, SmartSelfie Compare needs 4 to 8",
		"none":     "liveness: missing",
		"nine":     "liveness: 9 images",
		"badtype":  `comparison_image_type: "SELFIE" is not one of ID_PHOTO, PORTRAIT, DOCUMENT`,
		"notype":   "comparison_image_type: missing",
		"gif":      "liveness_3: not a JPEG or PNG",
		"gone":     "comparison_image: file not found",
		"cut":      "selfie: ",
		"stray":    "liveness: image 2 of 5 is empty",
		"":         "user_id: missing",
		"noselfie": "selfie: missing",
	}
	var v Validator
	seen := 0
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", row.Line, err)
		}
		seen++
		if err = v.Check(&row); err != nil {
			var re *RowError
			if !errors.As(err, &re) {
				t.Errorf("line %d: not a RowError: %v", row.Line, err)
			}
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		w := want[row.UserID]
		if (w == "") != (got == "") || !strings.HasPrefix(got, w) {
			t.Errorf("line %d (%s): %q, want %q", row.Line, row.UserID, got, w)
		}
		if row.UserID == "ok2" {
			if n := len(row.Compare.Liveness); n != 5 || row.Compare.Liveness[4].Path != filepath.Join(dir, "l5.jpg") {
				t.Errorf("ok2's liveness %+v", row.Compare.Liveness)
			}
			if imgs := row.Images(); len(imgs) != 7 || imgs[0].Field != "selfie" || imgs[1].Field != "comparison_image" || imgs[6].Field != "liveness_5" {
				t.Errorf("ok2's images %+v", imgs)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d rows read, want %d", seen, len(want))
	}
}

func TestCompareNumberedColumns(t *testing.T) {
	dir := compareDir(t)
	csv := "user_id,selfie,liveness_1,liveness_2,liveness_3,liveness_4,liveness_5,comparison_image,comparison_image_type\n" +
		"u1,s.jpg,l1.jpg,l2.jpg,l3.jpg,l4.jpg,,c.jpg,ID_PHOTO\n" +
		"u2,s.jpg,l1.jpg,l2.jpg,,l4.jpg,,c.jpg,ID_PHOTO\n"
	rd, err := NewProductReader(strings.NewReader(csv), dir, ProductCompare)
	if err != nil {
		t.Fatal(err)
	}
	var v Validator
	r1, _ := rd.Next()
	if err := v.Check(&r1); err != nil || len(r1.Compare.Liveness) != 4 {
		t.Errorf("u1: %v, %d frames", err, len(r1.Compare.Liveness))
	}
	r2, _ := rd.Next()
	if err := v.Check(&r2); err == nil || !strings.Contains(err.Error(), "3 images") {
		t.Errorf("u2: %v, want 3 images", err)
	}
	if _, err := ParseProduct("selfie"); err == nil {
		t.Error("ParseProduct accepted selfie")
	}
}
