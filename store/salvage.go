package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Salvage is what Salvage could not read.
type Salvage struct {
	// Records counts the records read and handed to fn.
	Records int
	// BadRecords lists the keys of records whose checksum or encoding was
	// wrong (as stored: a damaged key is shown as it is).
	BadRecords []string
	// BadPages counts the pages of the user records that could not be read
	// at all (their records are lost to the listing; how many is unknown).
	BadPages int
}

// Unreadable reports whether anything could not be read.
func (s Salvage) Unreadable() bool { return len(s.BadRecords) > 0 || s.BadPages > 0 }

// SalvageRecords reads every user record of the store file at path that
// can still be read, in key order, and calls fn with each. It reads the
// file itself, page by page, without bbolt and without a lock, and writes
// nothing: it works on a store that Open refuses as damaged (copy the file
// away first if a run may still hold it). A page that cannot be read is
// counted and skipped; so is a record whose checksum does not match.
func SalvageRecords(path string, fn func(Record) error) (Salvage, error) {
	var res Salvage
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("store %s: %w", path, ErrNotFound)
		}
		return res, fmt.Errorf("store %s: %w", path, withoutPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("store %s: %w", path, withoutPath(err))
	}
	m, err := readMeta(f)
	if err != nil {
		return res, fmt.Errorf("store %s: %w", path, err)
	}
	p := &pageReader{f: f, pageSize: m.pageSize, pages: uint64(fi.Size()) / uint64(m.pageSize), seen: map[uint64]bool{}}
	// The root bucket's tree holds the buckets by name; find "users".
	var users []byte
	err = p.walk(m.root, nil, func(k, v []byte, bucket bool) error {
		if bucket && string(k) == string(bucketUsers) {
			users = append([]byte(nil), v...)
		}
		return nil
	}, &res.BadPages)
	if err != nil {
		return res, err
	}
	if len(users) < 16 {
		return res, fmt.Errorf("store %s: %w: its records cannot be found", path, ErrDamaged)
	}
	root := binary.LittleEndian.Uint64(users[:8])
	var inline []byte
	if root == 0 {
		inline = users[16:] // a small bucket's page is kept in its value
	}
	err = p.walk(root, inline, func(k, v []byte, bucket bool) error {
		if bucket {
			res.BadRecords = append(res.BadRecords, string(k))
			return nil
		}
		rec, err := decodeRecord(k, v)
		if err != nil {
			res.BadRecords = append(res.BadRecords, string(k))
			return nil
		}
		res.Records++
		return fn(rec)
	}, &res.BadPages)
	return res, err
}

// readMeta returns the newer of the file's two meta pages whose checksum
// holds (see parseMetaPage).
func readMeta(f io.ReaderAt) (metaPage, error) {
	var best metaPage
	found := false
	// The second meta page is one page in: the first one's page size, or
	// bbolt's usual 4096 if the first cannot be read.
	for i, off := range []int64{0, 4096} {
		if i == 1 && found {
			off = int64(best.pageSize)
		}
		var b [metaPageSize]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			continue
		}
		m, ok := parseMetaPage(b[:])
		if !ok || m.pageSize < 512 || m.pageSize > 1<<20 {
			continue
		}
		if !found || m.txid > best.txid {
			best, found = m, true
		}
	}
	if !found {
		return metaPage{}, fmt.Errorf("%w: neither of its header pages can be read", ErrNotStore)
	}
	return best, nil
}

// pageReader reads a bbolt file's B+tree pages with every bound checked.
type pageReader struct {
	f        io.ReaderAt
	pageSize int
	pages    uint64
	seen     map[uint64]bool // pages walked, against loops in a damaged tree
}

// bbolt's page header and element layouts.
const (
	pageHeaderSize = 16
	branchElemSize = 16 // pos, ksize uint32; pgid uint64
	leafElemSize   = 16 // flags, pos, ksize, vsize uint32
	branchFlag     = 0x01
	leafFlag       = 0x02
	bucketLeafFlag = 0x01
)

// walk calls fn for every key and value of the tree rooted at page id (or
// of the inline page, if not nil), in key order. A page that cannot be
// read adds one to *bad and is skipped.
func (p *pageReader) walk(id uint64, inline []byte, fn func(k, v []byte, bucket bool) error, bad *int) error {
	buf := inline
	if buf == nil {
		var ok bool
		if buf, ok = p.read(id); !ok {
			*bad++
			return nil
		}
	}
	if len(buf) < pageHeaderSize {
		*bad++
		return nil
	}
	flags := binary.LittleEndian.Uint16(buf[8:10])
	count := int(binary.LittleEndian.Uint16(buf[10:12]))
	switch {
	case flags&branchFlag != 0:
		if pageHeaderSize+count*branchElemSize > len(buf) {
			*bad++
			return nil
		}
		for i := range count {
			e := buf[pageHeaderSize+i*branchElemSize:]
			if err := p.walk(binary.LittleEndian.Uint64(e[8:16]), nil, fn, bad); err != nil {
				return err
			}
		}
	case flags&leafFlag != 0:
		if pageHeaderSize+count*leafElemSize > len(buf) {
			*bad++
			return nil
		}
		for i := range count {
			off := pageHeaderSize + i*leafElemSize
			e := buf[off:]
			pos := off + int(binary.LittleEndian.Uint32(e[4:8]))
			ks, vs := int(binary.LittleEndian.Uint32(e[8:12])), int(binary.LittleEndian.Uint32(e[12:16]))
			if ks < 0 || vs < 0 || pos < off || pos+ks+vs > len(buf) || pos+ks+vs < pos {
				*bad++ // the rest of the page cannot be trusted either
				return nil
			}
			k, v := buf[pos:pos+ks], buf[pos+ks:pos+ks+vs]
			if err := fn(k, v, binary.LittleEndian.Uint32(e[0:4])&bucketLeafFlag != 0); err != nil {
				return err
			}
		}
	default:
		*bad++
	}
	return nil
}

// read returns page id with its overflow pages, or false if it is out of the
// file, was walked already, or says it is another page.
func (p *pageReader) read(id uint64) ([]byte, bool) {
	if id < 2 || id >= p.pages || p.seen[id] {
		return nil, false
	}
	p.seen[id] = true
	head := make([]byte, p.pageSize)
	if _, err := p.f.ReadAt(head, int64(id)*int64(p.pageSize)); err != nil {
		return nil, false
	}
	if binary.LittleEndian.Uint64(head[0:8]) != id {
		return nil, false
	}
	overflow := uint64(binary.LittleEndian.Uint32(head[12:16]))
	if overflow == 0 {
		return head, true
	}
	if id+overflow >= p.pages {
		return nil, false
	}
	buf := make([]byte, int(overflow+1)*p.pageSize)
	if _, err := p.f.ReadAt(buf, int64(id)*int64(p.pageSize)); err != nil {
		return nil, false
	}
	return buf, true
}
