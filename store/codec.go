package store

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// A record is stored in a compact binary form (about a fifth of its JSON):
//
//	byte 0     codecVersion (1); a record of the first stores is JSON and starts with '{'
//	byte 1     state: 0 none, 1 enrolled, 2 rejected, 3 failed, 4 pending
//	byte 2     flags (flag* below)
//	varints    line, attempts; uvarint run
//	if flagTime: varint unix seconds, uvarint nanoseconds of UpdatedAt (UTC)
//	strings    (uvarint length, bytes) user_id (unless flagSameKey),
//	           user_created_at, photo, photo_sha256 (32 raw bytes if
//	           flagRawSHA), result_code, result_text (neither if
//	           flagEnrollUser: 0840 "Enroll User"), smile_job_id, job_id,
//	           photo_note, error
//	if flagJob: uvarint generation, string in_flight_job_id (records of a
//	           product whose job IDs the tool chooses; a record without
//	           the flag has generation 0 and no job in flight, so the
//	           records of earlier versions read as they did)
//	4 bytes    CRC-32C (Castagnoli), little endian, of the key then every
//	           byte before it
//
// The checksum covers the key, so a changed byte in either is found on
// every read (see DamagedError); a record is never half believed.
const codecVersion = 1

const (
	flagUnknown    = 1 << iota // OutcomeUnknown
	flagSameKey                // UserID equals the key: not stored again
	flagTime                   // UpdatedAt is set
	flagRawSHA                 // PhotoSHA256 is 64 lowercase hex digits, stored as 32 bytes
	flagEnrollUser             // result_code 0840 with result_text "Enroll User": neither stored
	flagJob                    // Generation or InFlightJobID is set: both stored after error
)

// The answer nearly every enrolled record holds, stored as flagEnrollUser.
const (
	enrollUserCode = "0840"
	enrollUserText = "Enroll User"
)

// crcTable is CRC-32C's (hardware-accelerated on amd64 and arm64).
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stateCodes numbers the states in the binary form; 0 is the empty state.
var stateCodes = map[State]byte{"": 0, Enrolled: 1, Rejected: 2, Failed: 3, Pending: 4}

// codeStates is stateCodes the other way round.
var codeStates = [...]State{"", Enrolled, Rejected, Failed, Pending}

// errChecksum is a binary record whose checksum does not match its key and
// bytes.
var errChecksum = errors.New("checksum mismatch")

// appendRecord appends rec's binary form under key to dst.
func appendRecord(dst []byte, key string, rec *Record) ([]byte, error) {
	st, ok := stateCodes[rec.State]
	if !ok {
		return dst, fmt.Errorf("unknown state %q", rec.State)
	}
	start := len(dst)
	var flags byte
	if rec.OutcomeUnknown {
		flags |= flagUnknown
	}
	if rec.UserID == key {
		flags |= flagSameKey
	}
	if !rec.UpdatedAt.IsZero() {
		flags |= flagTime
	}
	sha, rawSHA := rawSHA256(rec.PhotoSHA256)
	if rawSHA {
		flags |= flagRawSHA
	}
	results := []string{rec.ResultCode, rec.ResultText, rec.SmileJobID, rec.JobID, rec.PhotoNote, rec.Error}
	if rec.ResultCode == enrollUserCode && rec.ResultText == enrollUserText {
		flags |= flagEnrollUser
		results = results[2:]
	}
	if rec.Generation != 0 || rec.InFlightJobID != "" {
		flags |= flagJob
	}
	dst = append(dst, codecVersion, st, flags)
	dst = binary.AppendVarint(dst, int64(rec.Line))
	dst = binary.AppendVarint(dst, int64(rec.Attempts))
	dst = binary.AppendUvarint(dst, rec.Run)
	if flags&flagTime != 0 {
		dst = binary.AppendVarint(dst, rec.UpdatedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(rec.UpdatedAt.Nanosecond()))
	}
	if flags&flagSameKey == 0 {
		dst = appendString(dst, rec.UserID)
	}
	dst = appendString(dst, rec.CreatedAt)
	dst = appendString(dst, rec.Photo)
	if rawSHA {
		dst = append(dst, sha[:]...)
	} else {
		dst = appendString(dst, rec.PhotoSHA256)
	}
	for _, s := range results {
		dst = appendString(dst, s)
	}
	if flags&flagJob != 0 {
		dst = binary.AppendUvarint(dst, rec.Generation)
		dst = appendString(dst, rec.InFlightJobID)
	}
	sum := crc32.Update(crc32.Checksum([]byte(key), crcTable), crcTable, dst[start:])
	return binary.LittleEndian.AppendUint32(dst, sum), nil
}

// encodeRecord is rec's binary form under key.
func encodeRecord(key string, rec *Record) ([]byte, error) {
	return appendRecord(make([]byte, 0, 128), key, rec)
}

// rawSHA256 returns the 32 bytes of a SHA-256 written as 64 lowercase hex
// digits (what the importer stores), or false for anything else, which is
// then stored as a string so that it reads back exactly.
func rawSHA256(s string) (sum [32]byte, ok bool) {
	if len(s) != 64 {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, hex.EncodeToString(sum[:]) == s
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeRecord reads the record stored under key: the binary form, its
// checksum verified, or the JSON of the first stores. Any fault is a
// *DamagedError naming key.
func decodeRecord(key, v []byte) (Record, error) {
	var rec Record
	var err error
	switch {
	case len(v) > 0 && v[0] == '{':
		err = decodeJSONRecord(v, &rec)
	case len(v) > 0 && v[0] == codecVersion:
		err = decodeBinary(key, v, &rec)
	case len(v) == 0:
		err = errors.New("empty record")
	default:
		err = fmt.Errorf("unknown record format %d", v[0])
	}
	if err != nil {
		return Record{}, &DamagedError{Key: string(key), Reason: err.Error()}
	}
	return rec, nil
}

// checkRecord verifies the record stored under key as decodeRecord would,
// without decoding a binary one: its checksum, and its state. It allocates
// nothing for a binary record (the store's check reads millions).
func checkRecord(key, v []byte) error {
	if len(v) < 10 || v[0] != codecVersion {
		_, err := decodeRecord(key, v)
		return err
	}
	body, tail := v[:len(v)-4], v[len(v)-4:]
	sum := crc32.Update(crc32.Checksum(key, crcTable), crcTable, body)
	switch {
	case sum != binary.LittleEndian.Uint32(tail):
		return &DamagedError{Key: string(key), Reason: errChecksum.Error()}
	case int(body[1]) >= len(codeStates):
		return &DamagedError{Key: string(key), Reason: fmt.Sprintf("unknown state code %d", body[1])}
	}
	return nil
}

// recordState returns the state of the record stored under key, verified as
// checkRecord does, without decoding the rest of a binary record.
func recordState(key, v []byte) (State, error) {
	if len(v) == 0 || v[0] != codecVersion {
		rec, err := decodeRecord(key, v)
		return rec.State, err
	}
	if err := checkRecord(key, v); err != nil {
		return "", err
	}
	return codeStates[v[1]], nil
}

// decodeJSONRecord reads a record of the first stores, which carry no
// checksum: its state at least must be one of the four.
func decodeJSONRecord(v []byte, rec *Record) error {
	if err := json.Unmarshal(v, rec); err != nil {
		return fmt.Errorf("decoding the record: %w", err)
	}
	if _, ok := stateCodes[rec.State]; !ok {
		return fmt.Errorf("unknown state %q", rec.State)
	}
	if !rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = rec.UpdatedAt.UTC() // as the binary form keeps it
	}
	return nil
}

// decodeUnlessEnrolled is decodeRecord, except that an enrolled binary
// record comes back with its state, line, attempts, run and user_id only
// (its checksum verified all the same): what a run needs to skip it.
func decodeUnlessEnrolled(key, v []byte) (Record, error) {
	if len(v) < 10 || v[0] != codecVersion || v[1] != stateCodes[Enrolled] {
		return decodeRecord(key, v)
	}
	if err := checkRecord(key, v); err != nil {
		return Record{}, err
	}
	d := decoder{b: v[3 : len(v)-4]}
	rec := Record{State: Enrolled, Line: int(d.varint()), Attempts: int(d.varint()), Run: d.uvarint(), UserID: string(key)}
	if v[2]&flagSameKey == 0 || d.err != nil {
		return decodeRecord(key, v) // rare: decode it all
	}
	return rec, nil
}

// decodeBinary reads the binary form of a record.
func decodeBinary(key, v []byte, rec *Record) error {
	if len(v) < 3+3+4 {
		return errors.New("record too short")
	}
	body, tail := v[:len(v)-4], v[len(v)-4:]
	sum := crc32.Update(crc32.Checksum(key, crcTable), crcTable, body)
	if sum != binary.LittleEndian.Uint32(tail) {
		return errChecksum
	}
	if int(body[1]) >= len(codeStates) {
		return fmt.Errorf("unknown state code %d", body[1])
	}
	rec.State = codeStates[body[1]]
	flags := body[2]
	rec.OutcomeUnknown = flags&flagUnknown != 0
	d := decoder{b: body[3:]}
	rec.Line = int(d.varint())
	rec.Attempts = int(d.varint())
	rec.Run = d.uvarint()
	if flags&flagTime != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail("bad time")
		}
		rec.UpdatedAt = time.Unix(sec, int64(nsec)).UTC()
	}
	if flags&flagSameKey != 0 {
		rec.UserID = string(key)
	} else {
		rec.UserID = d.string()
	}
	rec.CreatedAt = d.string()
	rec.Photo = d.string()
	if flags&flagRawSHA != 0 {
		rec.PhotoSHA256 = hex.EncodeToString(d.bytes(32))
	} else {
		rec.PhotoSHA256 = d.string()
	}
	if flags&flagEnrollUser != 0 {
		rec.ResultCode, rec.ResultText = enrollUserCode, enrollUserText
	} else {
		rec.ResultCode = d.string()
		rec.ResultText = d.string()
	}
	rec.SmileJobID = d.string()
	rec.JobID = d.string()
	rec.PhotoNote = d.string()
	rec.Error = d.string()
	if flags&flagJob != 0 {
		rec.Generation = d.uvarint()
		rec.InFlightJobID = d.string()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// decoder reads varints and strings from b, remembering the first fault.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.b = nil
}

// varint reads a signed varint: an unsigned one, zigzag-coded (as
// binary.AppendVarint writes it).
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) bytes(n int) []byte {
	if n > len(d.b) {
		d.fail("record cut short")
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("record cut short")
		return ""
	}
	return string(d.bytes(int(n)))
}
