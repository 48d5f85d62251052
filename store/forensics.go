package store

// Forensics of a store file: what Open reads of it before bbolt does (a
// damaged or cut file would make bbolt panic or fault), and the meta page
// layout that Salvage reads too.

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// checkHeader refuses, before bbolt touches it, a file whose first page is
// not a bbolt meta page (bbolt's magic after the 16-byte page header) or that is shorter than
// the four pages every bbolt file starts with.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [64]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("%w: too short to be one", ErrNotStore)
	}
	if binary.LittleEndian.Uint32(hdr[16:20]) != bboltMagic {
		return fmt.Errorf("%w: no bbolt header", ErrNotStore)
	}
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:28]))
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if pageSize < 512 || fi.Size() < 4*pageSize || fi.Size()%pageSize != 0 {
		return fmt.Errorf("%w: file size %d does not fit its page size %d (truncated?)", ErrNotStore, fi.Size(), pageSize)
	}
	// The file must hold every page below its high-water mark: bbolt would
	// otherwise read past the end of a cut file (an assertion panic, or a
	// fault that cannot be recovered).
	if pages := highWater(f, pageSize); fi.Size() < pages*pageSize {
		return fmt.Errorf("%w: file size %d is shorter than the %d pages of %d bytes it holds (truncated?)",
			ErrNotStore, fi.Size(), pages, pageSize)
	}
	return nil
}

// highWater returns the high-water mark (page count) of the newer valid
// meta page of the bbolt file f, or 0 if neither is valid (bbolt then
// reports the damage itself).
func highWater(f *os.File, pageSize int64) int64 {
	var pages uint64
	var txid int64 = -1
	for i := range int64(2) {
		var p [metaPageSize]byte
		if _, err := f.ReadAt(p[:], i*pageSize); err != nil {
			continue
		}
		m, ok := parseMetaPage(p[:])
		if !ok {
			continue
		}
		if int64(m.txid) > txid {
			txid, pages = int64(m.txid), m.pages
		}
	}
	return int64(pages)
}

// bboltMagic starts every bbolt meta page, after the page header.
const bboltMagic = 0xED0CDAED

// metaPageSize is how much of a meta page parseMetaPage reads.
const metaPageSize = 80

// metaPage is what the store's checks and Salvage read of a bbolt meta page.
type metaPage struct {
	pageSize int
	root     uint64 // the root bucket's page
	pages    uint64 // the high-water mark: pages in use
	txid     uint64
}

// parseMetaPage reads the first metaPageSize bytes of a bbolt meta page:
// a 16-byte page header, then magic, version, page size, flags, root bucket
// (page, sequence), free list, page count, txid and an FNV-64a checksum of
// the fields before it. It returns false when the magic or the checksum is
// wrong.
func parseMetaPage(p []byte) (metaPage, bool) {
	if len(p) < metaPageSize {
		return metaPage{}, false
	}
	h := fnv.New64a()
	h.Write(p[16:72])
	if binary.LittleEndian.Uint32(p[16:20]) != bboltMagic || h.Sum64() != binary.LittleEndian.Uint64(p[72:80]) {
		return metaPage{}, false
	}
	return metaPage{
		pageSize: int(binary.LittleEndian.Uint32(p[24:28])),
		root:     binary.LittleEndian.Uint64(p[32:40]),
		pages:    binary.LittleEndian.Uint64(p[56:64]),
		txid:     binary.LittleEndian.Uint64(p[64:72]),
	}, true
}
