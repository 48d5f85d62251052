package manifest

import (
	"bufio"
	"bulkenroll/importer/urlref"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// readBufferSize is the size of the buffer between the input and the CSV parser.
const readBufferSize = 64 << 10

// maxLineBytes bounds one physical line of input. Anything longer is not a
// manifest (a binary file, or a file with no line breaks) and would otherwise
// be held in memory whole; it stops the reader with an error.
const maxLineBytes = 64 << 20

// utf8BOM is the byte order mark some programs (Excel among them) write at the
// start of a UTF-8 file.
const utf8BOM = "\uFEFF"

// required lists the required columns in the order of Reader.cols.
var required = [3]string{ColUserID, ColCreatedAt, ColPhoto}

// Reader streams the rows of a manifest. It is not safe for concurrent use.
type Reader struct {
	// opt holds the header and the further columns a caller asked for (columns.go).
	opt     optional
	csv     *csv.Reader
	closer  io.Closer
	baseDir string
	cols    [3]int       // index of user_id, user_created_at and photo (compare: selfie) in a record; -1 if absent
	need    int          // fields a record needs to reach every required column
	width   int          // fields of the header: a record may have no more
	err     error        // sticky: io.EOF or the error that ended reading
	cmp     *compareCols // the compare columns, for a ProductCompare manifest
}

// NewReader reads the header from r and returns a Reader for the rows after
// it. baseDir is the folder photo paths are relative to; "" or "." leave them
// relative to the working folder.
//
// The header must name the columns user_id, user_created_at and photo, in any
// order, matched case-insensitively after trimming spaces; a UTF-8 byte order
// mark is skipped and other columns are ignored. An unusable header gives a
// *HeaderError; a failure to read gives a plain, wrapped error.
func NewReader(r io.Reader, baseDir string) (*Reader, error) {
	return newReader(r, baseDir, maxLineBytes)
}

// newReader is NewReader with a bound on the length of a line.
func newReader(r io.Reader, baseDir string, maxLine int64) (*Reader, error) {
	return newProductReader(r, baseDir, maxLine, ProductBackfill)
}

// newProductReader reads a manifest of product p.
func newProductReader(r io.Reader, baseDir string, maxLine int64, p Product) (*Reader, error) {
	br := bufio.NewReaderSize(&lineGuard{r: r, max: maxLine}, readBufferSize)
	// Drop a byte order mark before the CSV parser sees it, so that a quoted
	// first header field ("\uFEFF"user_id") is not taken for a bare quote.
	if b, err := br.Peek(len(utf8BOM)); string(b) == utf8BOM {
		if _, err := br.Discard(len(utf8BOM)); err != nil {
			return nil, fmt.Errorf("reading manifest header: %w", err)
		}
	} else if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("reading manifest header: %w", err)
	}

	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false

	header, err := cr.Read()
	if err == io.EOF {
		return nil, &HeaderError{Reason: "the file is empty; its first line must be a header naming " +
			"user_id, user_created_at and photo"}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return nil, &HeaderError{Reason: fmt.Sprintf("line %d: %s", pe.StartLine, parseErrorReason(pe))}
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest header: %w", err)
	}
	if p == ProductCompare {
		return newCompareReader(cr, baseDir, header)
	}

	m := &Reader{csv: cr, baseDir: baseDir, cols: [3]int{-1, -1, -1}, width: len(header)}
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, utf8BOM)
		}
		name = strings.TrimSpace(name)
		for k, want := range required {
			if !strings.EqualFold(name, want) {
				continue
			}
			if m.cols[k] >= 0 {
				return nil, &HeaderError{Reason: fmt.Sprintf("column %q appears twice (columns %d and %d)",
					want, m.cols[k]+1, i+1)}
			}
			m.cols[k] = i
		}
	}
	var missing []string
	for k, want := range required {
		if m.cols[k] < 0 {
			missing = append(missing, strconv.Quote(want))
		}
		m.need = max(m.need, m.cols[k]+1)
	}
	if len(missing) > 0 {
		reason := "missing required column " + missing[0]
		if len(missing) > 1 {
			reason = "missing required columns " + strings.Join(missing, ", ")
		}
		return nil, &HeaderError{Reason: reason + headerHint(header)}
	}
	m.opt.header = slices.Clone(header)
	return m, nil
}

// headerHint explains, where it can guess, why a header lacks the required
// columns; it returns "" or a text starting with a space.
func headerHint(header []string) string {
	first := ""
	if len(header) > 0 {
		first = header[0]
	}
	joined := strings.Join(header, ",")
	switch {
	case strings.HasPrefix(first, "PK\x03\x04"):
		return " (this looks like a ZIP or Excel workbook; save it as CSV)"
	case strings.HasPrefix(first, "\xff\xfe") || strings.HasPrefix(first, "\xfe\xff"):
		return " (the file is UTF-16; save it as UTF-8 CSV)"
	case strings.IndexByte(joined, 0) >= 0:
		return " (the file contains NUL bytes; is it a CSV text file?)"
	case !utf8.ValidString(joined):
		return " (the header is not valid UTF-8; is this a CSV text file?)"
	case len(header) == 1 && strings.ContainsAny(first, ";\t"):
		return " (the header has a single column; fields must be separated by commas, not semicolons or tabs)"
	case strings.Contains(joined, "\r"):
		return " (lines seem to end with a bare carriage return; save the file with LF or CRLF line endings)"
	}
	names := make([]string, 0, min(len(header), 6))
	for i, h := range header {
		if i == 6 {
			names = append(names, "...")
			break
		}
		names = append(names, quoteValue(strings.TrimSpace(strings.TrimPrefix(h, utf8BOM))))
	}
	return " (the header is " + strings.Join(names, ", ") + ")"
}

// Open opens the manifest at path and reads its header; photo paths are then
// relative to the manifest's folder when it is a regular file, and to the
// working folder otherwise: the path "-" (standard input), /dev/stdin, a
// process substitution's /dev/fd/N or a named pipe. Close releases the file.
func Open(path string) (*Reader, error) {
	return OpenProduct(path, ProductBackfill)
}

// OpenProduct is Open for a manifest of product p (see Product).
func OpenProduct(path string, p Product) (*Reader, error) {
	if path == "-" {
		r, err := NewProductReader(os.Stdin, ".", p)
		if err != nil {
			return nil, fmt.Errorf("standard input: %w", err)
		}
		return r, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening manifest: %w", err)
	}
	base := "." // the working folder, for anything but a regular file
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("opening manifest: %s is a folder, not a CSV file", path)
	} else if err == nil && fi.Mode().IsRegular() {
		base = filepath.Dir(path)
	}
	r, err := NewProductReader(f, base, p)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// Close closes the file opened by Open. It does nothing for standard input or
// for a Reader made by NewReader.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("closing manifest: %w", err)
	}
	return nil
}

// Next returns the next row. After the last one it returns io.EOF.
//
// A record that cannot be used (a CSV syntax error such as a bare quote, fewer
// fields than the required columns need, a NUL byte or invalid UTF-8 in a
// required field, more fields than the header) comes back as a Row, with Line
// and whatever fields could be read, together with a *RowError whose Field is
// "row"; the next call goes on with the following record. Missing trailing
// fields are fine as long as the required columns are present, and so are
// empty fields past the header's last (a trailing comma); a value past it is
// not (an unquoted comma in a value shifts the fields after it). Only a failure to read the input (or a
// line too long to be a manifest) is returned as a plain error, after which
// every call returns that same error.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	rec, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			row := r.fill(rec, pe.StartLine)
			return row, rowErr(FieldRow, parseErrorReason(pe))
		}
		if err == io.EOF {
			r.err = io.EOF
		} else {
			r.err = fmt.Errorf("reading manifest: %w", err)
		}
		return Row{}, r.err
	}
	line, _ := r.csv.FieldPos(0)
	row := r.fill(rec, line)
	r.opt.keep(rec)
	if len(rec) < r.need {
		return row, rowErr(FieldRow, r.tooFewReason(len(rec)))
	}
	if len(rec) > r.width && !blank(rec[r.width:]) {
		return row, rowErr(FieldRow, fmt.Sprintf("%d fields, the header has %d (is a comma in a value not quoted?)", len(rec), r.width))
	}
	for k, col := range r.cols {
		if col < 0 {
			continue
		}
		if reason := badText(rec[col]); reason != "" {
			return row, rowErr(FieldRow, fmt.Sprintf("the %s field %s", r.colName(k), reason))
		}
	}
	if r.cmp != nil {
		return row, r.cmp.fill(r, rec, &row)
	}
	return row, nil
}

// fill makes a Row of what rec holds. The strings of rec belong to one string
// allocated by encoding/csv for this record, so they are safe to keep.
func (r *Reader) fill(rec []string, line int) Row {
	row := Row{Line: line}
	if c := r.cols[0]; c < len(rec) {
		row.UserID = strings.TrimSpace(rec[c])
	}
	if c := r.cols[1]; c >= 0 && c < len(rec) {
		row.CreatedAt = strings.TrimSpace(rec[c])
	}
	if c := r.cols[2]; c < len(rec) {
		if photo := strings.TrimSpace(rec[c]); photo != "" {
			row.Photo = urlref.Redact(photo) // what is shown, stored and written
			row.PhotoPath = r.resolve(photo)
		}
	}
	return row
}

// resolve returns photo relative to the manifest's folder unless absolute or
// a URL (s3://, gs://, azblob://, https://, ...), which is kept as given.
func (r *Reader) resolve(photo string) string {
	if r.baseDir == "" || r.baseDir == "." || filepath.IsAbs(photo) || urlref.IsURL(photo) {
		return photo
	}
	return filepath.Join(r.baseDir, photo)
}

// blank reports whether every field is empty or spaces.
func blank(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// tooFewReason says which required column a record of n fields lacks.
func (r *Reader) tooFewReason(n int) string {
	first := -1
	for k, c := range r.cols {
		if c >= n && (first < 0 || c < r.cols[first]) {
			first = k
		}
	}
	fields := "fields"
	if n == 1 {
		fields = "field"
	}
	return fmt.Sprintf("only %d %s, so column %d (%s) is missing", n, fields, r.cols[first]+1, r.colName(first))
}

// badText returns why s cannot be a manifest value (a NUL byte, invalid
// UTF-8), or "" when it is fine.
func badText(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Sprintf("contains a NUL byte (at byte %d); is the manifest a UTF-8 text file?", i+1)
	}
	if !utf8.ValidString(s) {
		i := invalidUTF8At(s)
		return fmt.Sprintf("is not valid UTF-8 (byte 0x%02x at byte %d); save the manifest as UTF-8", s[i], i+1)
	}
	return ""
}

// invalidUTF8At returns the index of the first byte of s that does not start
// a valid UTF-8 sequence, or -1.
func invalidUTF8At(s string) int {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// parseErrorReason words a CSV syntax error for a RowError or HeaderError.
func parseErrorReason(pe *csv.ParseError) string {
	where := fmt.Sprintf("line %d, column %d", pe.Line, pe.Column)
	if pe.Line != pe.StartLine {
		where += fmt.Sprintf("; the record starts on line %d", pe.StartLine)
	}
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return "bare quote in field (" + where + "); put the whole field in quotes and double any quote inside it"
	case errors.Is(pe.Err, csv.ErrQuote):
		return "extraneous or missing quote in quoted field (" + where + "); a quote inside a quoted field must be doubled"
	default:
		return fmt.Sprintf("%v (%s)", pe.Err, where)
	}
}

// lineGuard passes reads through, counting lines, and fails once a single line
// grows past max bytes, so that a file without line breaks cannot make the CSV
// parser hold all of it in memory.
type lineGuard struct {
	r    io.Reader
	max  int64
	line int   // lines completed so far
	run  int64 // bytes read since the last newline
	err  error // sticky error of the guard itself
}

// Read implements io.Reader.
func (g *lineGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	chunk := p[:n]
	for {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			g.run += int64(len(chunk))
			break
		}
		if g.run+int64(i) > g.max {
			g.run += int64(i)
			break
		}
		chunk = chunk[i+1:]
		g.line++
		g.run = 0
		if int64(len(chunk)) <= g.max {
			// No line that starts in the rest of the chunk can be too long
			// yet: count them in one go.
			g.line += bytes.Count(chunk, []byte{'\n'})
			if j := bytes.LastIndexByte(chunk, '\n'); j >= 0 {
				chunk = chunk[j+1:]
			}
			g.run = int64(len(chunk))
			break
		}
	}
	if g.run > g.max {
		size := fmt.Sprintf("%d bytes", g.max)
		if g.max%(1<<20) == 0 {
			size = fmt.Sprintf("%d MiB", g.max>>20)
		}
		g.err = fmt.Errorf("line %d is longer than %s; is this really a CSV file?", g.line+1, size)
		return n, g.err
	}
	return n, err
}
