package photofix

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// minimalJPEG is SOI, a segment list and SOS: enough for the orientation
// parser, which stops at the image data.
func minimalJPEG(segs ...[]byte) []byte {
	b := []byte{0xFF, 0xD8}
	for _, s := range segs {
		b = append(b, s...)
	}
	return append(b, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34)
}

func TestOrientationParser(t *testing.T) {
	t.Parallel()
	jfif := []byte{0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	xmp := append([]byte{0xFF, 0xE1, 0x00, 0x08}, []byte("http:/")...)
	long := func(bo byteOrder, v uint32) []byte {
		seg := exifSegment(bo, 0)
		// Rewrite the second entry (Orientation) as a LONG.
		e := 4 + 6 + 8 + 2 + 12
		bo.PutUint16(seg[e+2:], 4)
		bo.PutUint32(seg[e+8:], v)
		return seg
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		want  int
		known bool
	}{
		{"II 6", minimalJPEG(exifSegment(binary.LittleEndian, 6)), 6, true},
		{"MM 8", minimalJPEG(exifSegment(binary.BigEndian, 8)), 8, true},
		{"MM 3 after JFIF and XMP", minimalJPEG(jfif, xmp, exifSegment(binary.BigEndian, 3)), 3, true},
		{"fill bytes before the marker", append([]byte{0xFF, 0xD8, 0xFF, 0xFF}, minimalJPEG(exifSegment(binary.BigEndian, 5))[2:]...), 5, true},
		{"LONG type", minimalJPEG(long(binary.LittleEndian, 7)), 7, true},
		{"LONG with a big value", minimalJPEG(long(binary.BigEndian, 1<<31)), 1, true},
		{"value 0", minimalJPEG(exifSegment(binary.LittleEndian, 0)), 1, true},
		{"value 9", minimalJPEG(exifSegment(binary.BigEndian, 9)), 1, true},
		{"no Exif", minimalJPEG(jfif), 1, true},
		{"Exif after the image data is ignored", append(minimalJPEG(jfif), exifSegment(binary.BigEndian, 6)...), 1, true},
		{"not a JPEG", []byte("\x89PNG\r\n\x1a\n"), 1, true},
		{"empty", nil, 1, false},
		{"SOI only", []byte{0xFF, 0xD8}, 1, false},
		{"cut inside the Exif IFD", minimalJPEG(exifSegment(binary.BigEndian, 6))[:30], 1, false},
		{"cut after the orientation entry", minimalJPEG(exifSegment(binary.BigEndian, 6))[:50], 6, true},
		{"segment length 0", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x00}, 1, true},
		{"IFD offset past the end", minimalJPEG([]byte{0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', '*', 0, 0xFF, 0xFF, 0xFF, 0x7F}), 1, true},
		{"entry count past the end", minimalJPEG([]byte{0xFF, 0xE1, 0x00, 0x12, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, '*', 0, 0, 0, 8, 0xFF, 0xFF}), 1, true},
		{"not TIFF inside Exif", minimalJPEG([]byte{0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'X', 'X', 0, 0, 0, 0, 0, 8}), 1, true},
	} {
		o, known := jpegOrientation(tc.data)
		if o != tc.want || known != tc.known {
			t.Errorf("%s: got %d, known %v; want %d, %v", tc.name, o, known, tc.want, tc.known)
		}
		if Orientation(tc.data) != tc.want {
			t.Errorf("%s: Orientation disagrees", tc.name)
		}
	}
}

// FuzzOrientation checks the EXIF parser never panics, always answers 1-8,
// and that an answer given as certain from the first bytes of a file is the
// answer for the whole file.
func FuzzOrientation(f *testing.F) {
	for o := uint16(0); o <= 9; o++ {
		f.Add(minimalJPEG(exifSegment(binary.LittleEndian, o)), 40)
		f.Add(minimalJPEG(exifSegment(binary.BigEndian, o)), 20)
	}
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0, 0}, 6)
	f.Add([]byte("\xff\xd8\xff\xe1\x00\x1cExif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"), 9)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		orig := bytes.Clone(data)
		o, known := jpegOrientation(data)
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d out of range", o)
		}
		if Orientation(data) != o {
			t.Fatal("Orientation disagrees with jpegOrientation")
		}
		if cut >= 0 && cut <= len(data) {
			if po, pk := jpegOrientation(data[:cut]); pk && (po != o || !known) {
				t.Fatalf("prefix of %d bytes: %d (certain), whole file: %d (certain %v)", cut, po, o, known)
			}
		}
		if tiffO, found, _ := exifOrientation(data); tiffO < 1 || tiffO > 8 || (!found && tiffO != 1) {
			t.Fatalf("exifOrientation gave %d, found %v", tiffO, found)
		}
		_ = Needs(data, int64(len(data)), 0)
		if !bytes.Equal(data, orig) {
			t.Fatal("the parser changed its input")
		}
	})
}
