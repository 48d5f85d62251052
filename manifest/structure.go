package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// StructureCheck checks that a JPEG or PNG file is whole, as its bytes go
// by, without decoding it: a JPEG's segments from the start-of-image marker
// through each scan's entropy-coded data to the end-of-image marker, a PNG's
// chunks, each with its CRC, from IHDR to IEND. A photo that fails it would
// not decode (Go's decoders and libjpeg/libpng refuse it), so it is never
// sent. Bytes after the end (EOI, IEND) are ignored, as decoders do.
//
// Write the whole file, in pieces of any size, then call Reason. The zero
// value is ready; Reset makes it ready for another file. It allocates
// nothing.
type StructureCheck struct {
	kind  byte // 0 not known yet, 'J' JPEG, 'P' PNG, 'X' neither
	state uint8
	off   int64 // bytes written so far
	skip  int64 // bytes of a segment or chunk still to pass over
	acc   [8]byte
	nacc  int
	after uint8 // state once skip is done
	// JPEG
	sawSOF, sawSOS bool
	// PNG
	chunk   [4]byte // type of the chunk being read
	chunkAt int64
	crc     uint32
	sawIDAT bool
	fault   string
}

// States of the walk.
const (
	stSig    uint8 = iota // the first two bytes, to tell the kind
	stPNGSig              // the rest of a PNG's signature
	stMarker              // JPEG: a marker's 0xFF (fill bytes allowed)
	stCode                // JPEG: the marker's code
	stLen                 // JPEG: a segment's two length bytes
	stSkip                // skipping skip bytes, then state after
	stScan                // JPEG: entropy-coded data
	stScanFF              // JPEG: entropy-coded data, after an 0xFF
	stChunk               // PNG: a chunk's length and type
	stData                // PNG: a chunk's data
	stCRC                 // PNG: a chunk's CRC
	stDone                // after EOI or IEND
	stFault               // fault says why
)

// Reset makes c ready for another file.
func (c *StructureCheck) Reset() { *c = StructureCheck{} }

// Write feeds the next bytes of the file. It never fails: Reason says what
// was wrong.
func (c *StructureCheck) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.state != stDone && c.state != stFault {
		used := c.step(p)
		c.off += int64(used)
		p = p[used:]
	}
	if len(p) > 0 {
		c.off += int64(len(p))
	}
	return n, nil
}

// Reason returns "" when the bytes written make a whole JPEG or PNG (or
// are neither: that is CheckHead's to say), and otherwise why the photo
// would not decode, such as "truncated JPEG: no end-of-image marker".
func (c *StructureCheck) Reason() string {
	switch c.state {
	case stDone:
		return ""
	case stFault:
		return c.fault
	}
	switch c.kind {
	case 'J':
		if !c.sawSOS {
			return fmt.Sprintf("truncated JPEG: it ends at byte %d, inside its headers, before any image data", c.off)
		}
		return "truncated JPEG: no end-of-image marker"
	case 'P':
		if c.state == stData || c.state == stCRC || c.state == stChunk && c.nacc > 0 {
			return fmt.Sprintf("truncated PNG: it ends at byte %d, inside its %s chunk", c.off, chunkName(c.chunk))
		}
		return "truncated PNG: no IEND chunk"
	}
	return ""
}

// StructureReason returns "" when data is a whole JPEG or PNG (or neither),
// and otherwise why it would not decode (see StructureCheck).
func StructureReason(data []byte) string {
	var c StructureCheck
	c.Write(data)
	return c.Reason()
}

func (c *StructureCheck) fail(format string, args ...any) {
	c.state, c.fault = stFault, fmt.Sprintf(format, args...)
}

// gather appends bytes of p to c.acc until it holds want bytes; it returns
// how many bytes of p it used and whether acc is complete.
func (c *StructureCheck) gather(p []byte, want int) (int, bool) {
	k := copy(c.acc[c.nacc:want], p)
	c.nacc += k
	return k, c.nacc == want
}

// step consumes a prefix of p (at least one byte) and returns its length.
func (c *StructureCheck) step(p []byte) int {
	switch c.state {
	case stSig:
		k, full := c.gather(p, 2)
		if !full {
			return k
		}
		switch {
		case c.acc[0] == 0xFF && c.acc[1] == 0xD8:
			c.kind, c.state, c.nacc = 'J', stMarker, 0
		case c.acc[0] == pngMagic[0] && c.acc[1] == pngMagic[1]:
			c.kind, c.state = 'P', stPNGSig
		default:
			c.kind, c.state = 'X', stDone
		}
		return k
	case stPNGSig:
		k, full := c.gather(p, 8)
		if !full {
			return k
		}
		c.kind, c.state, c.nacc = 'P', stChunk, 0
		if !bytes.Equal(c.acc[:8], pngMagic) {
			c.kind, c.state = 'X', stDone
		}
		return k
	case stSkip:
		k := int(min(int64(len(p)), c.skip))
		if c.kind == 'P' {
			c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:k])
		}
		c.skip -= int64(k)
		if c.skip == 0 {
			c.state = c.after
		}
		return k
	}
	if c.kind == 'J' {
		return c.stepJPEG(p)
	}
	return c.stepPNG(p)
}

// stepJPEG walks a JPEG's markers and scans.
func (c *StructureCheck) stepJPEG(p []byte) int {
	switch c.state {
	case stMarker:
		if p[0] != 0xFF {
			return 1 // decoders skip stray bytes between segments
		}
		c.state = stCode
		return 1
	case stCode:
		code := p[0]
		switch {
		case code == 0xFF:
			return 1 // a fill byte
		case code == 0xD9:
			if !c.sawSOS {
				c.fail("damaged JPEG: it ends (end-of-image marker at byte %d) before any image data", c.off-1)
				return 1
			}
			c.state = stDone
			return 1
		case code == 0x00:
			c.fail("damaged JPEG: no marker at byte %d", c.off-1)
			return 1
		case code == 0x01 || code == 0xD8 || code >= 0xD0 && code <= 0xD7:
			c.state = stMarker // markers without a length
			return 1
		}
		c.acc[7] = code
		c.state, c.nacc = stLen, 0
		return 1
	case stLen:
		k, full := c.gather(p, 2)
		if !full {
			return k
		}
		code := c.acc[7]
		n := int64(binary.BigEndian.Uint16(c.acc[:2]))
		if n < 2 {
			c.fail("damaged JPEG: segment 0x%02X at byte %d has length %d", code, c.off+int64(k)-4, n)
			return k
		}
		c.skip, c.after = n-2, stMarker
		switch {
		case code == 0xDA:
			if !c.sawSOF {
				c.fail("damaged JPEG: image data at byte %d before any frame header", c.off+int64(k)-4)
				return k
			}
			c.sawSOS, c.after = true, stScan
		case code >= 0xC0 && code <= 0xCF && code != 0xC4 && code != 0xC8 && code != 0xCC:
			c.sawSOF = true
		}
		c.state = stSkip
		if c.skip == 0 {
			c.state = c.after
		}
		return k
	case stScan:
		// Most 0xFF bytes in entropy-coded data are stuffed (FF 00) or
		// restart markers: pass over them here, without a step each.
		i := 0
		for {
			j := bytes.IndexByte(p[i:], 0xFF)
			if j < 0 {
				return len(p)
			}
			i += j + 1
			if i == len(p) {
				c.state = stScanFF
				return i
			}
			if b := p[i]; b == 0x00 || b >= 0xD0 && b <= 0xD7 {
				i++
				continue
			}
			c.state = stScanFF
			return i
		}
	case stScanFF:
		code := p[0]
		switch {
		case code == 0x00 || code >= 0xD0 && code <= 0xD7:
			c.state = stScan // a stuffed 0xFF, or a restart marker
			return 1
		case code == 0xFF:
			return 1 // fill
		}
		// A marker ends the scan: EOI, or another table or scan.
		c.state = stCode
		return c.stepJPEG(p)
	}
	return len(p)
}

// stepPNG walks a PNG's chunks, checking each CRC.
func (c *StructureCheck) stepPNG(p []byte) int {
	switch c.state {
	case stChunk:
		k, full := c.gather(p, 8)
		if !full {
			return k
		}
		n := int64(binary.BigEndian.Uint32(c.acc[:4]))
		copy(c.chunk[:], c.acc[4:8])
		c.chunkAt = c.off + int64(k) - 8
		c.nacc = 0
		if n > 1<<31-1 {
			c.fail("damaged PNG: chunk %s at byte %d claims %d bytes", chunkName(c.chunk), c.chunkAt, n)
			return k
		}
		first := c.chunkAt == 8
		isIHDR := c.chunk == [4]byte{'I', 'H', 'D', 'R'}
		if first != isIHDR {
			c.fail("damaged PNG: the first chunk is %s, not IHDR", chunkName(c.chunk))
			return k
		}
		c.crc = crcType(c.chunk)
		c.skip, c.after, c.state = n, stCRC, stSkip
		if n == 0 {
			c.state = stCRC
		}
		return k
	case stCRC:
		k, full := c.gather(p, 4)
		if !full {
			return k
		}
		c.nacc = 0
		if binary.BigEndian.Uint32(c.acc[:4]) != c.crc {
			c.fail("damaged PNG: CRC mismatch in chunk %s at byte %d", chunkName(c.chunk), c.chunkAt)
			return k
		}
		switch c.chunk {
		case [4]byte{'I', 'D', 'A', 'T'}:
			c.sawIDAT = true
		case [4]byte{'I', 'E', 'N', 'D'}:
			if !c.sawIDAT {
				c.fail("damaged PNG: it ends (IEND) without image data (IDAT)")
				return k
			}
			c.state = stDone
			return k
		}
		c.state = stChunk
		return k
	}
	return len(p)
}

// crcType is the CRC-32 of a chunk's type, where its CRC starts. (It is
// computed here rather than by crc32.Update, to which a slice of c would
// escape, costing every check an allocation.)
func crcType(t [4]byte) uint32 {
	crc := ^uint32(0)
	for _, b := range t {
		crc = crc32.IEEETable[byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

// chunkName shows a PNG chunk type, escaping odd bytes.
func chunkName(t [4]byte) string {
	for _, b := range t {
		if b < 'A' || b > 'z' || b > 'Z' && b < 'a' {
			return fmt.Sprintf("%q", t[:])
		}
	}
	return string(t[:])
}

// Done reports whether the walk is over: the end was reached (EOI, IEND),
// a fault was found, or the file is neither a JPEG nor a PNG. Bytes written
// after it are not looked at.
func (c *StructureCheck) Done() bool { return c.state == stDone || c.state == stFault }
