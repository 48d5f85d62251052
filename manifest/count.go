package manifest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
)

// Count returns the number of data records in the manifest at path, for
// progress displays. It parses quoting as the Reader does, but checks
// nothing; records with CSV syntax errors count as one each. Like the
// Reader, it gives up on a line longer than 64 MiB.
//
// Only a regular file is counted: opening a pipe (/dev/stdin, <(...)) a
// second time would take rows from the import that reads it, so Count
// refuses anything else with ErrNotRegular.
func Count(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("counting %s: %w", path, ErrNotRegular)
	}
	cr := csv.NewReader(bufio.NewReaderSize(&lineGuard{r: f, max: maxLineBytes}, 1<<16))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	n := -1 // the header
	for {
		_, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return max(n, 0), nil
		}
		var pe *csv.ParseError
		if err != nil && !errors.As(err, &pe) {
			return 0, err
		}
		n++
	}
}

// ErrNotRegular means a manifest is not a regular file (a pipe, a terminal,
// a device), so its rows can be read only once.
var ErrNotRegular = errors.New("not a regular file: its rows can be read only once")

// IsRegularFile reports whether path names a regular file (following links,
// without opening it): such a manifest can be read twice.
func IsRegularFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// CountShard counts the data records of the manifest at path whose user_id
// is in shard (every record for the zero Shard), for a progress display's
// total. Like Count, it reads only regular files.
func CountShard(path string, shard Shard) (int, error) {
	if shard.IsZero() {
		return Count(path)
	}
	if !IsRegularFile(path) {
		return 0, fmt.Errorf("counting %s: %w", path, ErrNotRegular)
	}
	rd, err := Open(path)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n := 0
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		var rowErr *RowError
		if err != nil && !errors.As(err, &rowErr) {
			return 0, err
		}
		if shard.Has(row.UserID) {
			n++
		}
	}
}
