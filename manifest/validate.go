package manifest

import (
	"bulkenroll/importer/urlref"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// ClockSkew is how far in the future a user_created_at may be before it is
// refused. A date alone is midnight UTC, which is up to 14 hours ahead of the
// clock for someone at UTC+14 writing today's date, and the clock itself may
// be a little off.
const ClockSkew = 24 * time.Hour

// maxPathBytes is the longest photo path accepted, in bytes (Linux PATH_MAX).
const maxPathBytes = 4096

// sniffLen is how many bytes of a photo are read to tell its type.
const sniffLen = 16

var (
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	pngMagic  = []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}
)

// Validator checks rows offline. The zero value is ready to use.
type Validator struct {
	// MaxPhotoBytes is the largest photo accepted, in bytes; 0 means
	// DefaultMaxPhotoBytes.
	MaxPhotoBytes int64
	// Now returns the current time, for refusing dates in the future; nil
	// means time.Now.
	Now func() time.Time
}

// IsCompare reports whether row is a compare row.
func (row *Row) IsCompare() bool { return row.Compare != nil }

func (v *Validator) maxPhoto() int64 {
	if v.MaxPhotoBytes > 0 {
		return v.MaxPhotoBytes
	}
	return DefaultMaxPhotoBytes
}

// CheckFields checks user_id (present, at most MaxUserIDLen bytes, valid UTF-8
// without control characters) and user_created_at (present, accepted by
// ParseCreatedAt, and not later than now plus ClockSkew). It returns nil or a
// *RowError. It does not allocate when the row is fine.
//
// A compare row (Row.Compare set) is checked for its user_id, its
// comparison_image_type and its number of liveness images instead.
func (v *Validator) CheckFields(row *Row) error {
	if row.Compare != nil {
		return checkCompareFields(row)
	}
	if err := checkUserID(row.UserID); err != nil {
		return err
	}
	if row.CreatedAt == "" {
		return rowErr(ColCreatedAt, "missing")
	}
	t, err := ParseCreatedAt(row.CreatedAt)
	if err != nil {
		return rowErr(ColCreatedAt, err.Error())
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if t.After(now().Add(ClockSkew)) {
		return rowErr(ColCreatedAt, quoteIfOdd(row.CreatedAt)+" is in the future")
	}
	return nil
}

// quoteIfOdd returns a parsed date as is unless it contains a space, which
// would blur where it ends in a message.
func quoteIfOdd(s string) string {
	if strings.IndexByte(s, ' ') >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// checkUserID returns nil or the *RowError for a bad user_id.
func checkUserID(id string) error {
	if id == "" {
		return rowErr(ColUserID, "missing")
	}
	if len(id) > MaxUserIDLen {
		return rowErr(ColUserID, fmt.Sprintf("longer than %d bytes (%d bytes)", MaxUserIDLen, len(id)))
	}
	for i := 0; i < len(id); {
		c := id[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7F {
				return rowErr(ColUserID, fmt.Sprintf("contains a control character (%U at byte %d)", rune(c), i+1))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(id[i:])
		if r == utf8.RuneError && size == 1 {
			return rowErr(ColUserID, fmt.Sprintf("is not valid UTF-8 (byte 0x%02x at byte %d)", c, i+1))
		}
		if r >= 0x80 && r <= 0x9F || r == '\u2028' || r == '\u2029' {
			return rowErr(ColUserID, fmt.Sprintf("contains a control character (%U at byte %d)", r, i+1))
		}
		i += size
	}
	return nil
}

// CheckPhoto checks the row's photo: the path is present, names an existing
// file (symbolic links are followed) that is a regular file (not a folder,
// device, named pipe or socket: this is checked before opening, so a named
// pipe never blocks), not empty, at most MaxPhotoBytes, a JPEG (FF D8 FF) or
// PNG (89 50 4E 47 0D 0A 1A 0A) by its first bytes, whatever its name says,
// and whole (see StructureCheck). It reads the file through once, holding
// no more than a small buffer of it.
//
// It returns the size of the file, or a *RowError with Field "photo".
// PhotoPath is checked, or Photo if PhotoPath is empty.
//
// A remote photo (IsURL) is not fetched: CheckPhoto only refuses a malformed
// one (see remoteReason) and otherwise returns size -1 and nil; its
// existence, size and type are checked by the importer's photo source.
//
// For a compare row it checks every image (selfie, comparison_image, each
// liveness image), the error naming the image's field, and returns the
// selfie's size.
func (v *Validator) CheckPhoto(row *Row) (size int64, err error) {
	if row.Compare != nil {
		return v.checkCompareImages(row)
	}
	return v.checkImage(row.Photo, row.PhotoPath)
}

// checkImage is CheckPhoto of one image, given as shown and as resolved.
func (v *Validator) checkImage(shown, path string) (size int64, err error) {
	if path == "" {
		path = shown
	}
	if path == "" {
		return 0, rowErr(ColPhoto, "missing")
	}
	if len(path) > maxPathBytes {
		return 0, rowErr(ColPhoto, fmt.Sprintf("path longer than %d bytes (%d bytes)", maxPathBytes, len(path)))
	}
	if i := strings.IndexByte(path, 0); i >= 0 {
		return 0, rowErr(ColPhoto, fmt.Sprintf("path contains a NUL byte (at byte %d)", i+1))
	}
	if urlref.IsURL(path) {
		if reason := remoteReason(path); reason != "" {
			return 0, rowErr(ColPhoto, reason)
		}
		return -1, nil
	}
	size, _, err = PeekPhoto(path, v.maxPhoto())
	var re *RowError
	if err != nil && !errors.As(err, &re) {
		// Offline, a photo that cannot be read is a problem of the row.
		return 0, rowErr(ColPhoto, fmt.Sprintf("cannot read %s: %v", showPath(path), unwrapPath(err)))
	}
	return size, err
}

// PeekPhoto checks the photo file at path: a regular file (checked before
// opening, so a named pipe never blocks), not empty, at most maxBytes, a
// JPEG or PNG by its first bytes, and whole (see StructureCheck: it reads
// the file to its end, holding no more than a small buffer of it). It
// returns the size and the first bytes read. A fault of the photo itself is
// a *RowError with Field "photo"; a failure to read it (an I/O error, too
// many open files) is a plain wrapped error, which may pass.
func PeekPhoto(path string, maxBytes int64) (size int64, head []byte, err error) {
	head = make([]byte, sniffLen)
	size, n, err := ScanFile(path, maxBytes, head)
	if err != nil {
		return 0, nil, err
	}
	head = head[:n]
	if rerr := CheckHead(head); rerr != nil {
		return 0, nil, rerr
	}
	return size, head, nil
}

// CheckHead refuses a photo whose first bytes are not a JPEG's or a PNG's.
func CheckHead(head []byte) *RowError {
	if len(head) == 0 {
		return rowErr(ColPhoto, "empty file")
	}
	if reason := imageReason(head); reason != "" {
		return rowErr(ColPhoto, reason)
	}
	return nil
}

// PeekFile is PeekPhoto without the check of the type or the structure,
// reading only the first bytes: for photos that are to be converted.
func PeekFile(path string, maxBytes int64) (size int64, head []byte, err error) {
	head = make([]byte, sniffLen)
	size, n, err := peekFile(path, maxBytes, head, false)
	return size, head[:n], err
}

// ScanFile checks the file at path as PeekFile does, copies its first bytes
// into head (as many as fit; n says how many) and, when it is a JPEG or a
// PNG, reads it to its end to check its structure (see StructureCheck): a
// photo that would not decode is a *RowError. Other types are not refused
// here (CheckHead does, or a conversion reads them).
func ScanFile(path string, maxBytes int64, head []byte) (size int64, n int, err error) {
	return peekFile(path, maxBytes, head, true)
}

// peekFile opens the file at path after checking what it is, fills head
// and, with walk, reads the rest through a StructureCheck.
func peekFile(path string, maxBytes int64, head []byte, walk bool) (size int64, n int, err error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPhotoBytes
	}
	if path == "" {
		return 0, 0, rowErr(ColPhoto, "missing")
	}
	fi, err := os.Stat(path)
	if err != nil {
		if rerr := fileError(path, err); rerr != nil {
			return 0, 0, rerr
		}
		return 0, 0, fmt.Errorf("checking photo %s: %w", showPath(path), unwrapPath(err))
	}
	if rerr := checkFileInfo(fi, maxBytes); rerr != nil {
		return 0, 0, rerr
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		if rerr := fileError(path, err); rerr != nil {
			return 0, 0, rerr
		}
		return 0, 0, fmt.Errorf("opening photo %s: %w", showPath(path), unwrapPath(err))
	}
	defer f.Close()
	// The file may have been replaced since Stat: check what was opened.
	fi, err = f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("checking photo %s: %w", showPath(path), unwrapPath(err))
	}
	if rerr := checkFileInfo(fi, maxBytes); rerr != nil {
		return 0, 0, rerr
	}
	if !walk {
		n, err = io.ReadFull(f, head)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, 0, fmt.Errorf("reading photo %s: %w", showPath(path), unwrapPath(err))
		}
		if n == 0 {
			return 0, 0, rowErr(ColPhoto, "empty file")
		}
		return fi.Size(), n, nil
	}
	n, err = walkFile(f, head, maxBytes)
	if err != nil {
		var rerr *RowError
		if errors.As(err, &rerr) {
			return 0, 0, rerr
		}
		return 0, 0, fmt.Errorf("reading photo %s: %w", showPath(path), unwrapPath(err))
	}
	return fi.Size(), n, nil
}

// walkBufs holds the read buffers of structure walks.
var walkBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// walkFile reads f, copying its first bytes into head, and when it is a
// JPEG or PNG reads on through a StructureCheck to its end (at most limit
// bytes in all). A small file takes one read. It returns how many bytes
// head holds, and a *RowError for a fault of the photo or a plain error
// for a failure to read.
func walkFile(f io.Reader, head []byte, limit int64) (n int, err error) {
	bp := walkBufs.Get().(*[]byte)
	defer walkBufs.Put(bp)
	buf := *bp
	first := buf
	if len(head) > len(buf) {
		first = head // read the head straight into it
	}
	m, err := io.ReadAtLeast(f, first, min(len(head), len(first)))
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, err
	}
	n = copy(head, first[:m])
	if n == 0 {
		return 0, rowErr(ColPhoto, "empty file")
	}
	if imageReason(head[:n]) != "" {
		return n, nil // not a JPEG or PNG: CheckHead says so, or a conversion reads it
	}
	var c StructureCheck
	c.Write(first[:m])
	total := int64(m)
	for !c.Done() && err == nil {
		var k int
		k, err = f.Read(buf)
		c.Write(buf[:k])
		if total += int64(k); total > limit {
			return 0, rowErr(ColPhoto, fmt.Sprintf("over the %d-byte limit", limit))
		}
	}
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, err
	}
	if reason := c.Reason(); reason != "" {
		return 0, rowErr(ColPhoto, reason)
	}
	return n, nil
}

// Check runs CheckFields and then CheckPhoto, and returns the first problem
// found (a *RowError) or nil.
func (v *Validator) Check(row *Row) error {
	if err := v.CheckFields(row); err != nil {
		return err
	}
	_, err := v.CheckPhoto(row)
	return err
}

// ReadPhoto reads the whole photo at path into buf, which is Reset first (the
// caller may pool it). It refuses a photo of more than maxBytes bytes (0 or
// less means DefaultMaxPhotoBytes) reading at most maxBytes+1 of them, and
// checks again, on what it opened and read, that it is a regular file, not
// empty, and a JPEG or PNG: the file may have changed since CheckPhoto.
//
// A bad photo (gone, not a regular file, empty, too big, not JPEG or PNG,
// permission denied) gives a *RowError with Field "photo"; a failure to read
// gives a plain, wrapped error.
func ReadPhoto(path string, maxBytes int64, buf *bytes.Buffer) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPhotoBytes
	}
	buf.Reset()
	if path == "" {
		return rowErr(ColPhoto, "missing")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		if rerr := fileError(path, err); rerr != nil {
			return rerr
		}
		// Opening a socket fails (ENXIO): say what the file is instead.
		if fi, serr := os.Stat(path); serr == nil {
			if rerr := checkFileInfo(fi, maxBytes); rerr != nil {
				return rerr
			}
		}
		return fmt.Errorf("opening photo: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking photo: %w", err)
	}
	if rerr := checkFileInfo(fi, maxBytes); rerr != nil {
		return rerr
	}
	buf.Grow(int(fi.Size()) + bytes.MinRead) // no-op for a pooled buffer that is big enough
	n, err := buf.ReadFrom(io.LimitReader(f, maxBytes+1))
	if err != nil {
		buf.Reset()
		return fmt.Errorf("reading photo %s: %w", path, unwrapPath(err))
	}
	if n > maxBytes {
		buf.Reset()
		return rowErr(ColPhoto, fmt.Sprintf("over the %d-byte limit", maxBytes))
	}
	if n == 0 {
		return rowErr(ColPhoto, "empty file")
	}
	if reason := imageReason(buf.Bytes()); reason != "" {
		buf.Reset()
		return rowErr(ColPhoto, reason)
	}
	if reason := StructureReason(buf.Bytes()); reason != "" {
		buf.Reset()
		return rowErr(ColPhoto, reason)
	}
	return nil
}

// checkFileInfo refuses anything but a regular, non-empty file of at most
// limit bytes.
func checkFileInfo(fi fs.FileInfo, limit int64) *RowError {
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		return rowErr(ColPhoto, "is a folder")
	case !mode.IsRegular():
		return rowErr(ColPhoto, "is not a regular file ("+fileKind(mode)+")")
	case fi.Size() == 0:
		return rowErr(ColPhoto, "empty file")
	case fi.Size() > limit:
		return rowErr(ColPhoto, fmt.Sprintf("%d bytes, over the %d-byte limit", fi.Size(), limit))
	}
	return nil
}

// fileKind names the type of a file that is not regular.
func fileKind(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeCharDevice != 0:
		return "character device"
	case mode&fs.ModeDevice != 0:
		return "block device"
	case mode&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "irregular file"
}

// fileError words the failure to stat or open the photo at path when it is
// about the photo itself (missing, a broken link, no permission), and returns
// nil for anything else, such as an I/O error.
func fileError(path string, err error) *RowError {
	shown := showPath(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			return rowErr(ColPhoto, fmt.Sprintf("broken symbolic link: %s (points to %s)", shown, showPath(target)))
		}
		return rowErr(ColPhoto, "file not found: "+shown+notFoundHint(path))
	case errors.Is(err, syscall.ENOTDIR):
		return rowErr(ColPhoto, "file not found: "+shown+" (part of the path is a file, not a folder)")
	case errors.Is(err, fs.ErrPermission):
		return rowErr(ColPhoto, "permission denied: "+shown)
	case errors.Is(err, syscall.ELOOP):
		return rowErr(ColPhoto, "too many levels of symbolic links: "+shown)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return rowErr(ColPhoto, "path or file name too long: "+shown)
	}
	return nil
}

// notFoundHint guesses why a photo path that does not exist was written.
func notFoundHint(path string) string {
	switch {
	case strings.HasPrefix(path, "~/") || strings.Contains(path, "/~/"):
		return " (~ is not expanded; write the full path)"
	}
	return ""
}

// unwrapPath returns the cause inside an *fs.PathError, whose own message
// repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// imageReason returns "" when head starts like a JPEG or PNG file, and
// otherwise why the photo is refused.
func imageReason(head []byte) string {
	if bytes.HasPrefix(head, jpegMagic) || bytes.HasPrefix(head, pngMagic) {
		return ""
	}
	if kind := contentKind(head); kind != "" {
		return "not a JPEG or PNG (content is " + kind + ")"
	}
	return fmt.Sprintf("not a JPEG or PNG (content starts with %q)", head[:min(len(head), 8)])
}

// contentKind names some common file types by their first bytes, or "".
func contentKind(head []byte) string {
	s := string(head) // no allocation: only compared
	switch {
	case strings.HasPrefix(s, "GIF87a") || strings.HasPrefix(s, "GIF89a"):
		return "a GIF image"
	case len(s) >= 12 && s[:4] == "RIFF" && s[8:12] == "WEBP":
		return "a WebP image"
	case len(s) >= 12 && s[4:8] == "ftyp":
		switch s[8:12] {
		case "heic", "heix", "hevc", "heim", "heis", "mif1", "msf1":
			return "a HEIC/HEIF image; convert it to JPEG"
		case "avif", "avis":
			return "an AVIF image"
		}
		return "an ISO media file"
	case len(s) >= 10 && s[:2] == "BM" && s[6:10] == "\x00\x00\x00\x00":
		return "a BMP image"
	case strings.HasPrefix(s, "II*\x00") || strings.HasPrefix(s, "MM\x00*"):
		return "a TIFF image"
	case strings.HasPrefix(s, "%PDF"):
		return "a PDF document"
	case strings.HasPrefix(s, "PK\x03\x04"):
		return "a ZIP archive"
	case bytes.HasPrefix(head, jpegMagic[:2]):
		return "a damaged JPEG: FF D8 is not followed by FF"
	case strings.HasPrefix(s, "\x89PNG"):
		return "a damaged PNG signature"
	}
	return ""
}
