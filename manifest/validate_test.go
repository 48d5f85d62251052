package manifest

import (
	"bulkenroll/importer/urlref"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckFields(t *testing.T) {
	tests := []struct {
		name, id, date string
		want           string // "" when the row is fine
	}{
		{name: "ok", id: "user-001", date: "2021-08-12"},
		{name: "unicode id", id: "Zoë 用户 42", date: "2021-08-12T15:14:43Z"},
		{name: "id at the limit", id: strings.Repeat("a", MaxUserIDLen), date: "2021-08-12"},
		{name: "id over the limit", id: strings.Repeat("a", MaxUserIDLen+1), date: "2021-08-12", want: "user_id: longer than 128 bytes (129 bytes)"},
		{name: "multibyte id over the limit", id: strings.Repeat("é", 65), date: "2021-08-12", want: "user_id: longer than 128 bytes (130 bytes)"},
		{name: "missing id", id: "", date: "2021-08-12", want: "user_id: missing"},
		{name: "tab", id: "a\tb", date: "2021-08-12", want: "user_id: contains a control character (U+0009 at byte 2)"},
		{name: "newline", id: "ab\n", date: "2021-08-12", want: "user_id: contains a control character (U+000A at byte 3)"},
		{name: "NUL", id: "\x00", date: "2021-08-12", want: "user_id: contains a control character (U+0000 at byte 1)"},
		{name: "DEL", id: "a\x7f", date: "2021-08-12", want: "user_id: contains a control character (U+007F at byte 2)"},
		{name: "C1 control", id: "a\u0085", date: "2021-08-12", want: "user_id: contains a control character (U+0085 at byte 2)"},
		{name: "line separator", id: "a\u2028b", date: "2021-08-12", want: "user_id: contains a control character (U+2028 at byte 2)"},
		{name: "invalid UTF-8", id: "ab\xe9", date: "2021-08-12", want: "user_id: is not valid UTF-8 (byte 0xe9 at byte 3)"},
		{name: "missing date", id: "u", date: "", want: "user_created_at: missing"},
		{name: "bad date", id: "u", date: "12/08/2021", want: `user_created_at: "12/08/2021" is not an ISO 8601 date or date-time (use 2021-08-12 or 2021-08-12T15:14:43Z)`},
		{name: "impossible date", id: "u", date: "2021-02-30", want: `user_created_at: "2021-02-30" is not a valid date: February 2021 has 28 days`},
		{name: "future", id: "u", date: "2031-01-01", want: "user_created_at: 2031-01-01 is in the future"},
		{name: "future date-time", id: "u", date: "2024-01-02 12:00:01", want: `user_created_at: "2024-01-02 12:00:01" is in the future`},
		{name: "future by an hour past the skew", id: "u", date: "2024-01-02T13:00:00Z", want: "user_created_at: 2024-01-02T13:00:00Z is in the future"},
		// The clock says 2024-01-01T12:00Z: tomorrow's date is already today at UTC+14.
		{name: "today somewhere", id: "u", date: "2024-01-02"},
		{name: "within the skew", id: "u", date: "2024-01-02T12:00:00Z"},
		{name: "now in another zone", id: "u", date: "2024-01-02T01:00:00+13:00"},
		{name: "id checked first", id: "", date: "nonsense", want: "user_id: missing"},
	}
	v := testValidator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := Row{Line: 2, UserID: tt.id, CreatedAt: tt.date}
			err := v.CheckFields(&row)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RowError", err)
			}
			if err.Error() != tt.want {
				t.Fatalf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestCheckFieldsRealClock(t *testing.T) {
	var v Validator // zero value: time.Now
	if err := v.CheckFields(&Row{UserID: "u", CreatedAt: time.Now().UTC().Format("2006-01-02")}); err != nil {
		t.Errorf("today: %v", err)
	}
	if err := v.CheckFields(&Row{UserID: "u", CreatedAt: time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)}); err == nil {
		t.Error("three days ahead: no error")
	}
}

func TestCheckFieldsAllocs(t *testing.T) {
	v := testValidator()
	row := Row{Line: 2, UserID: "user-0001", CreatedAt: "2021-08-12T15:14:43.123+02:00", Photo: "a.jpg", PhotoPath: "a.jpg"}
	if n := testing.AllocsPerRun(100, func() {
		if v.CheckFields(&row) != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("CheckFields allocates %v times per valid row", n)
	}
}

var (
	jpegBytes = encodeJPEG(nil, 8, 8)
	pngBytes  = encodePNG(nil, 8, 8)
	gifBytes  = []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
)

// photoDir makes a folder of photos, good and bad, in a temporary folder.
func photoDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ok.jpg", jpegBytes)
	write("ok.png", pngBytes)
	write("png-named.jpg", pngBytes)
	write("jpeg-named.gif", jpegBytes)
	write("text.jpg", []byte("just some text, not a photo\n"))
	write("gif.gif", gifBytes)
	write("gif-named.jpg", gifBytes)
	write("empty.jpg", nil)
	write("short-jpeg.jpg", []byte{0xFF, 0xD8})
	write("short-png.png", pngBytes[:7])
	write("webp.jpg", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "))
	write("heic.jpg", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"))
	write("pdf.jpg", []byte("%PDF-1.7\n"))
	write("binary.jpg", []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09})
	write("space name.jpg", jpegBytes)
	write("limit.jpg", append(append([]byte{}, jpegBytes...), make([]byte, 1000-len(jpegBytes))...)) // 1000 bytes, padded after its end
	write("over.jpg", append(append([]byte{}, jpegBytes[:3]...), make([]byte, 998)...))              // 1001 bytes
	if err := os.Mkdir(filepath.Join(dir, "folder.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"link-ok.jpg":       "ok.jpg",
		"link-folder.jpg":   "folder.jpg",
		"link-dangling.jpg": "gone.jpg",
		"loop-a.jpg":        "loop-b.jpg",
		"loop-b.jpg":        "loop-a.jpg",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Skipf("cannot make symbolic links here: %v", err)
		}
	}
	return dir
}

func TestCheckPhoto(t *testing.T) {
	dir := photoDir(t)
	v := &Validator{MaxPhotoBytes: 1000}
	tests := []struct {
		photo    string
		want     string // "" when the photo is fine
		wantSize int64
	}{
		{photo: "ok.jpg", wantSize: int64(len(jpegBytes))},
		{photo: "ok.png", wantSize: int64(len(pngBytes))},
		{photo: "png-named.jpg", wantSize: int64(len(pngBytes))},
		{photo: "jpeg-named.gif", wantSize: int64(len(jpegBytes))},
		{photo: "space name.jpg", wantSize: int64(len(jpegBytes))},
		{photo: "link-ok.jpg", wantSize: int64(len(jpegBytes))},
		{photo: "limit.jpg", wantSize: 1000},
		{photo: "over.jpg", want: "photo: 1001 bytes, over the 1000-byte limit"},
		{photo: "text.jpg", want: `photo: not a JPEG or PNG (content starts with "just som")`},
		{photo: "binary.jpg", want: `photo: not a JPEG or PNG (content starts with "\x00\x01\x02\x03\x04\x05\x06\a")`},
		{photo: "gif.gif", want: "photo: not a JPEG or PNG (content is a GIF image)"},
		{photo: "gif-named.jpg", want: "photo: not a JPEG or PNG (content is a GIF image)"},
		{photo: "webp.jpg", want: "photo: not a JPEG or PNG (content is a WebP image)"},
		{photo: "heic.jpg", want: "photo: not a JPEG or PNG (content is a HEIC/HEIF image; convert it to JPEG)"},
		{photo: "pdf.jpg", want: "photo: not a JPEG or PNG (content is a PDF document)"},
		{photo: "short-jpeg.jpg", want: "photo: not a JPEG or PNG (content is a damaged JPEG: FF D8 is not followed by FF)"},
		{photo: "short-png.png", want: "photo: not a JPEG or PNG (content is a damaged PNG signature)"},
		{photo: "empty.jpg", want: "photo: empty file"},
		{photo: "folder.jpg", want: "photo: is a folder"},
		{photo: "link-folder.jpg", want: "photo: is a folder"},
		{photo: "nope.jpg", want: "photo: file not found: " + filepath.Join(dir, "nope.jpg")},
		{photo: "link-dangling.jpg", want: "photo: broken symbolic link: " + filepath.Join(dir, "link-dangling.jpg") + " (points to gone.jpg)"},
		{photo: "loop-a.jpg", want: "photo: too many levels of symbolic links: " + filepath.Join(dir, "loop-a.jpg")},
		{photo: "ok.jpg/x.jpg", want: "photo: file not found: " + filepath.Join(dir, "ok.jpg", "x.jpg") + " (part of the path is a file, not a folder)"},
		{photo: "a\x00b.jpg", want: "photo: path contains a NUL byte"},
		{photo: strings.Repeat("d/", 3000) + "x.jpg", want: "photo: path longer than 4096 bytes ("},
	}
	for _, tt := range tests {
		t.Run(tt.photo[:min(len(tt.photo), 40)], func(t *testing.T) {
			row := Row{Line: 2, UserID: "u", CreatedAt: "2021-08-12", Photo: tt.photo, PhotoPath: filepath.Join(dir, tt.photo)}
			size, err := v.CheckPhoto(&row)
			if tt.want == "" {
				if err != nil || size != tt.wantSize {
					t.Fatalf("got %d, %v; want %d, nil", size, err, tt.wantSize)
				}
				return
			}
			var re *RowError
			if !errors.As(err, &re) || re.Field != ColPhoto {
				t.Fatalf("got %v, want a photo *RowError", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestCheckPhotoHints(t *testing.T) {
	var v Validator
	for photo, want := range map[string]string{
		"~/photos/a.jpg": "photo: file not found: ~/photos/a.jpg (~ is not expanded; write the full path)",
		"":               "photo: missing",
	} {
		_, err := v.CheckPhoto(&Row{Photo: photo, PhotoPath: photo})
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", photo, err, want)
		}
	}
	// Photo is used when PhotoPath is empty (a Row built by hand).
	dir := photoDir(t)
	t.Chdir(dir)
	if _, err := v.CheckPhoto(&Row{Photo: "ok.jpg"}); err != nil {
		t.Errorf("Photo without PhotoPath: %v", err)
	}
}

func TestCheckPhotoDefaultLimit(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int64{"at.jpg": DefaultMaxPhotoBytes, "over.jpg": DefaultMaxPhotoBytes + 1} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(jpegBytes); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil { // sparse: quick to make
			t.Fatal(err)
		}
		f.Close()
	}
	var v Validator
	if size, err := v.CheckPhoto(&Row{PhotoPath: filepath.Join(dir, "at.jpg")}); err != nil || size != DefaultMaxPhotoBytes {
		t.Errorf("at the limit: %d, %v", size, err)
	}
	_, err := v.CheckPhoto(&Row{PhotoPath: filepath.Join(dir, "over.jpg")})
	if err == nil || err.Error() != "photo: 5242881 bytes, over the 5242880-byte limit" {
		t.Errorf("over the limit: %v", err)
	}

	var buf bytes.Buffer
	if err := ReadPhoto(filepath.Join(dir, "at.jpg"), 0, &buf); err != nil || int64(buf.Len()) != DefaultMaxPhotoBytes {
		t.Errorf("ReadPhoto at the limit: %d bytes, %v", buf.Len(), err)
	}
	if err := ReadPhoto(filepath.Join(dir, "over.jpg"), 0, &buf); err == nil || err.Error() != "photo: 5242881 bytes, over the 5242880-byte limit" {
		t.Errorf("ReadPhoto over the limit: %v", err)
	}
}

func TestCheckPhotoUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which can read a file whatever its mode")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.jpg")
	if err := os.WriteFile(path, jpegBytes, 0o000); err != nil {
		t.Fatal(err)
	}
	var v Validator
	_, err := v.CheckPhoto(&Row{PhotoPath: path})
	if err == nil || err.Error() != "photo: permission denied: "+path {
		t.Errorf("CheckPhoto: %v", err)
	}
	var re *RowError
	if err := ReadPhoto(path, 0, new(bytes.Buffer)); !errors.As(err, &re) {
		t.Errorf("ReadPhoto: %v, want a *RowError", err)
	}
}

func TestCheck(t *testing.T) {
	dir := photoDir(t)
	v := testValidator()
	for _, tt := range []struct {
		row  Row
		want string
	}{
		{row: Row{UserID: "u", CreatedAt: "2021-08-12", PhotoPath: filepath.Join(dir, "ok.jpg")}},
		{row: Row{UserID: "", CreatedAt: "2021-08-12", PhotoPath: filepath.Join(dir, "text.jpg")}, want: "user_id: missing"},
		{row: Row{UserID: "u", CreatedAt: "2021-08-12", PhotoPath: filepath.Join(dir, "text.jpg")}, want: "photo: not a JPEG or PNG"},
	} {
		err := v.Check(&tt.row)
		if (tt.want == "") != (err == nil) || err != nil && !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.row, err, tt.want)
		}
	}
}

func TestReadPhoto(t *testing.T) {
	dir := photoDir(t)
	tests := []struct {
		name string
		max  int64
		want string // "" when the photo is read
	}{
		{name: "ok.jpg"},
		{name: "ok.png"},
		{name: "png-named.jpg"},
		{name: "link-ok.jpg"},
		{name: "limit.jpg", max: 1000},
		{name: "over.jpg", max: 1000, want: "photo: 1001 bytes, over the 1000-byte limit"},
		{name: "text.jpg", want: `photo: not a JPEG or PNG (content starts with "just som")`},
		{name: "gif-named.jpg", want: "photo: not a JPEG or PNG (content is a GIF image)"},
		{name: "empty.jpg", want: "photo: empty file"},
		{name: "folder.jpg", want: "photo: is a folder"},
		{name: "link-folder.jpg", want: "photo: is a folder"},
		{name: "nope.jpg", want: "photo: file not found"},
		{name: "link-dangling.jpg", want: "photo: broken symbolic link"},
	}
	var buf bytes.Buffer
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf.WriteString("left over from an earlier photo")
			path := filepath.Join(dir, tt.name)
			err := ReadPhoto(path, tt.max, &buf)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(path)
				if !bytes.Equal(buf.Bytes(), want) {
					t.Fatalf("read %d bytes, want the %d of the file", buf.Len(), len(want))
				}
				return
			}
			var re *RowError
			if !errors.As(err, &re) || re.Field != ColPhoto || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want a *RowError %q", err, tt.want)
			}
		})
	}
}

// TestReadPhotoRechecks shows that ReadPhoto does not trust an earlier
// CheckPhoto: the file may have changed since.
func TestReadPhotoRechecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jpg")
	if err := os.WriteFile(path, jpegBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	v := &Validator{MaxPhotoBytes: 1000}
	if _, err := v.CheckPhoto(&Row{PhotoPath: path}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, tt := range []struct {
		content []byte
		want    string
	}{
		{content: []byte("now it is text"), want: "photo: not a JPEG or PNG"},
		{content: nil, want: "photo: empty file"},
		{content: append(append([]byte{}, jpegBytes...), make([]byte, 1000)...), want: "photo: " + strconv.Itoa(len(jpegBytes)+1000) + " bytes, over the 1000-byte limit"},
	} {
		if err := os.WriteFile(path, tt.content, 0o644); err != nil {
			t.Fatal(err)
		}
		err := ReadPhoto(path, 1000, &buf)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
		if buf.Len() != 0 {
			t.Errorf("refused photo left %d bytes in the buffer", buf.Len())
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := ReadPhoto(path, 1000, &buf); err == nil || !strings.HasPrefix(err.Error(), "photo: file not found") {
		t.Errorf("removed: got %v", err)
	}
}

func TestRowErrorAndHeaderError(t *testing.T) {
	if got := (&RowError{Field: "photo", Reason: "is a folder"}).Error(); got != "photo: is a folder" {
		t.Errorf("RowError: %q", got)
	}
	if got := (&HeaderError{Reason: `missing required column "photo"`}).Error(); got != `manifest header: missing required column "photo"` {
		t.Errorf("HeaderError: %q", got)
	}
}

func TestDuplicates(t *testing.T) {
	d := NewDuplicates()
	steps := []struct {
		id   string
		line int
		want int
	}{
		{"a", 2, 0},
		{"b", 3, 0},
		{"a", 4, 2},
		{"A", 5, 0},
		{"a", 6, 2},
		{"b", 7, 3},
		{"", 8, 0},
		{"", 9, 8},
	}
	for _, s := range steps {
		if got := d.Seen(s.id, s.line); got != s.want {
			t.Errorf("Seen(%q, %d) = %d, want %d", s.id, s.line, got, s.want)
		}
	}
	if d.Len() != 4 {
		t.Errorf("Len = %d, want 4", d.Len())
	}
}

func TestCheckPhotoRemote(t *testing.T) {
	var v Validator
	tests := []struct{ photo, want string }{
		{photo: "s3://bucket/photos/a.jpg"},
		{photo: "s3://bucket/a.jpg?endpoint=http://127.0.0.1:9000&use_path_style=true"},
		{photo: "S3://bucket/a.jpg"},
		{photo: "gs://bucket/a b.jpg"},
		{photo: "azblob://container/dir/a.png"},
		{photo: "https://cdn.example.com/a.jpg?X-Amz-Signature=secret"},
		{photo: "http://127.0.0.1:8080/a.jpg"},
		{photo: "http://localhost/a.jpg"},
		{photo: "http://[::1]:8080/a.jpg"},
		{photo: "ftp://host/a.jpg", want: "photo: unsupported URL scheme ftp:// in ftp://host/a.jpg (use a file path, s3://, gs://, azblob:// or https://)"},
		{photo: "file:///tmp/a.jpg", want: "photo: unsupported URL scheme file://"},
		{photo: "s3://bucket", want: "photo: missing object key in s3://bucket (the form is s3://bucket/key)"},
		{photo: "s3://bucket/", want: "photo: missing object key in s3://bucket/"},
		{photo: "gs://bucket/folder/", want: "photo: missing object key"},
		{photo: "gs:///a.jpg", want: "photo: missing bucket name in gs:///a.jpg"},
		{photo: "azblob:///a.jpg?sig=secret", want: "photo: missing container name in azblob:///a.jpg?sig=REDACTED (the form"},
		{photo: "https:///a.jpg", want: "photo: URL without a host"},
		{photo: "http://10.1.2.3/a.jpg", want: "photo: plain http:// is allowed only for loopback hosts: http://10.1.2.3/a.jpg (use https://)"},
		{photo: "https://user:pw@h/a%zz.jpg?tok=secret", want: "photo: not a valid URL: https://REDACTED@h/a%zz.jpg?tok=REDACTED ("},
		{photo: "s3://bucket/a#b.jpg", want: `photo: "#" in s3://bucket/a starts a URL fragment`},
	}
	for _, tt := range tests {
		row := Row{UserID: "u", CreatedAt: "2021-08-12", Photo: tt.photo, PhotoPath: tt.photo}
		size, err := v.CheckPhoto(&row)
		if tt.want == "" {
			if err != nil || size != -1 {
				t.Errorf("%s: got %d, %v; want -1, nil (not fetched)", tt.photo, size, err)
			}
			continue
		}
		var re *RowError
		if !errors.As(err, &re) || re.Field != ColPhoto || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %s", tt.photo, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: message shows a secret: %v", tt.photo, err)
		}
	}
	for photo, want := range map[string]bool{
		"s3://b/k": true, "HTTPS://h/a": true, "ftp://h/a": true, "git+ssh://h/a": true,
		"a.jpg": false, "/abs/a.jpg": false, "photos/s3://x": false, "C://a.jpg": false, "://a": false, "1a://x": false,
	} {
		if urlref.IsURL(photo) != want {
			t.Errorf("IsURL(%q) = %v", photo, !want)
		}
	}
}
