package photofix

import "encoding/binary"

// Orientation returns the EXIF orientation (1 to 8) of a JPEG file, read from
// the IFD0 Orientation tag (0x0112) of its APP1 "Exif" segment. It returns 1
// (upright) when data is not a JPEG, has no Exif segment or no orientation
// tag, or when the value is outside 1-8. It never panics and reads no further
// than the start of the image data, whatever the input.
func Orientation(data []byte) int {
	o, _ := jpegOrientation(data)
	return o
}

// jpegOrientation walks the JPEG markers before the image data looking for the
// first APP1 Exif segment. known is false when data ends before the answer is
// certain (a head cut off inside the headers, or inside the Exif segment
// before the orientation tag was found); the orientation is then 1.
func jpegOrientation(data []byte) (orientation int, known bool) {
	if len(data) < 2 {
		// Too short to tell; only the start of a JPEG leaves the answer open.
		return 1, len(data) == 1 && data[0] != 0xFF
	}
	if data[0] != 0xFF || data[1] != 0xD8 {
		return 1, true // not a JPEG: nothing to apply
	}
	i := 2
	for {
		// Each marker is 0xFF, any number of 0xFF fill bytes, then the code.
		if i >= len(data) {
			return 1, false
		}
		if data[i] != 0xFF {
			return 1, true // not a marker where one must be: give up, upright
		}
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return 1, false
		}
		code := data[i]
		i++
		switch {
		case code == 0xD8 || code == 0x01 || (code >= 0xD0 && code <= 0xD7):
			continue // markers without a length
		case code == 0xDA || code == 0xD9 || code == 0x00:
			return 1, true // image data, end of image, or garbage: no Exif before it
		}
		if i+2 > len(data) {
			return 1, false
		}
		n := int(binary.BigEndian.Uint16(data[i : i+2])) // counts its own two bytes
		if n < 2 {
			return 1, true
		}
		end := i + n
		payload := data[i+2 : min(end, len(data))]
		if code == 0xE1 && len(payload) >= 6 && string(payload[:6]) == "Exif\x00\x00" {
			o, found, complete := exifOrientation(payload[6:])
			switch {
			case found:
				return o, true
			case complete || end <= len(data):
				// The whole segment was there: no orientation tag.
				return 1, true
			default:
				return 1, false
			}
		}
		if code == 0xE1 && len(payload) < 6 && end > len(data) {
			return 1, false // might be Exif, cut off before we can tell
		}
		i = end
	}
}

// exifOrientation reads the Orientation tag from a TIFF structure (the Exif
// payload after "Exif\0\0"), in either byte order. found says the tag was
// there with a value of 1-8 (any other value counts as absent); complete says
// the whole IFD0 entry table was inside tiff, so a missing tag is truly
// missing rather than cut off.
func exifOrientation(tiff []byte) (orientation int, found, complete bool) {
	if len(tiff) < 8 {
		return 1, false, false
	}
	var bo binary.ByteOrder
	switch string(tiff[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1, false, true // not TIFF: nothing more to learn
	}
	off := uint64(bo.Uint32(tiff[4:8]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 1, false, off < 8
	}
	count := uint64(bo.Uint16(tiff[off : off+2]))
	p := off + 2
	for k := uint64(0); k < count; k++ {
		e := p + 12*k
		if e+12 > uint64(len(tiff)) {
			return 1, false, false
		}
		entry := tiff[e : e+12]
		if bo.Uint16(entry[0:2]) != 0x0112 {
			continue
		}
		typ, n := bo.Uint16(entry[2:4]), bo.Uint32(entry[4:8])
		var v uint32
		switch {
		case typ == 3 && n >= 1: // SHORT: the first two bytes of the value field
			v = uint32(bo.Uint16(entry[8:10]))
		case typ == 4 && n == 1: // LONG, written by a few tools
			v = bo.Uint32(entry[8:12])
		default:
			return 1, false, true
		}
		if v < 1 || v > 8 {
			return 1, false, true
		}
		return int(v), true, true
	}
	return 1, false, true
}
