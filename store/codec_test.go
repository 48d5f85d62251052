package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCodecRoundTrip encodes records of every shape and reads them back
// exactly.
func TestCodecRoundTrip(t *testing.T) {
	full := rec("user-1", Rejected, 3)
	full.OutcomeUnknown, full.JobID, full.PhotoNote, full.Error = true, "job-9", "rotated", "refused: é ☃"
	enrolled := rec("user-3", Enrolled, 4) // 0840 "Enroll User": stored as a flag
	otherText := rec("user-4", Enrolled, 5)
	otherText.ResultText = "Enroll user"  // not the usual text: kept as it is
	inFlight := rec("user-5", Pending, 6) // compare: a job in flight
	inFlight.Generation, inFlight.InFlightJobID = 3, "bulkenroll-0123456789abcdef0123456789abcdef"
	answered := rec("user-6", Enrolled, 7) // compare: answered, generation moved on
	answered.ResultCode, answered.ResultText, answered.Generation = "0840", "Face Match", 1<<40
	jobOnly := Record{UserID: "user-7", State: Failed, InFlightJobID: "j"}
	odd := rec("user-2", Failed, 0)
	odd.PhotoSHA256 = strings.ToUpper(odd.PhotoSHA256) // not the importer's form: kept as text
	tests := []struct {
		name string
		key  string
		rec  Record
	}{
		{"full", "user-1", full},
		{"zero", "k", Record{}},
		{"row key", RowKey(12), Record{UserID: "", State: Rejected, Line: 12, Error: "user_id: empty"}},
		{"other user id", RowKey(13), Record{UserID: "dup", State: Rejected, Line: 13}},
		{"upper-case sha", "user-2", odd},
		{"enroll user", "user-3", enrolled},
		{"0840 with another text", "user-4", otherText},
		{"job in flight", "user-5", inFlight},
		{"generation", "user-6", answered},
		{"job at generation 0", "user-7", jobOnly},
		{"negative and big", "x", Record{State: Pending, Line: -1, Attempts: 1 << 40, Run: 1<<64 - 1,
			UpdatedAt: time.Date(1969, 7, 20, 20, 17, 40, 999_999_999, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := encodeRecord(tt.key, &tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRecord([]byte(tt.key), v); err != nil {
				t.Errorf("checkRecord: %v", err)
			}
			got, err := decodeRecord([]byte(tt.key), v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.rec) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.rec)
			}
			// Any single changed byte, in the value or in the key, is found.
			for i := range v {
				bad := append([]byte(nil), v...)
				bad[i] ^= 0x01
				if _, err := decodeRecord([]byte(tt.key), bad); !errors.Is(err, ErrDamaged) {
					t.Fatalf("byte %d changed: %v, want ErrDamaged", i, err)
				}
				if err := checkRecord([]byte(tt.key), bad); !errors.Is(err, ErrDamaged) {
					t.Fatalf("byte %d changed: checkRecord %v, want ErrDamaged", i, err)
				}
			}
			if _, err := decodeRecord([]byte(tt.key+"x"), v); !errors.Is(err, ErrDamaged) {
				t.Errorf("another key: %v, want ErrDamaged", err)
			}
		})
	}
}

// TestCodecReadsEarlierRecords: records written by the codec before
// generations and jobs in flight existed (bytes kept from it) read as they
// were, with generation 0 and no job in flight, and are written back in
// the same bytes.
func TestCodecReadsEarlierRecords(t *testing.T) {
	tests := []struct {
		key, hex string
		want     Record
	}{
		{"user-7", "01020f120403c0eaf4b00d050a323032302d30312d303207702f372e6a70679f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a080432323133096261642070686f746f0a30303030303030303432056a6f622d3707726f7461746564077265667573656430faa3b8",
			Record{UserID: "user-7", State: Rejected, Line: 9, CreatedAt: "2020-01-02", Photo: "p/7.jpg",
				PhotoSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Attempts: 2,
				ResultCode: "2213", ResultText: "bad photo", SmileJobID: "0000000042", JobID: "job-7",
				OutcomeUnknown: true, PhotoNote: "rotated", Error: "refused", Run: 3,
				UpdatedAt: time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)}},
		{"user-8", "010112140203000000000000002584085a",
			Record{UserID: "user-8", State: Enrolled, Line: 10, ResultCode: "0840", ResultText: "Enroll User", Attempts: 1, Run: 3}},
	}
	for _, tt := range tests {
		v, err := hex.DecodeString(tt.hex)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord([]byte(tt.key), v)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.key, got, err, tt.want)
		}
		again, err := encodeRecord(tt.key, &got)
		if err != nil || !bytes.Equal(again, v) {
			t.Errorf("%s: written back as %x, %v; want the same bytes", tt.key, again, err)
		}
	}
}

// TestCodecSize keeps the binary form compact: an enrolled record as an
// import leaves it is under a quarter of its JSON.
func TestCodecSize(t *testing.T) {
	r := rec("user-00000001", Enrolled, 1)
	r.PhotoSHA256 = ""
	v, err := encodeRecord(r.UserID, &r)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(&r)
	if len(v) > 64 || 4*len(v) > len(j) {
		t.Errorf("binary record %d bytes (JSON %d): want at most 64 and a quarter of the JSON", len(v), len(j))
	}
	t.Logf("binary record %d bytes, JSON %d", len(v), len(j))
}

// TestCodecRefusesUnknownState: a state the codec cannot name is an error,
// not a silent "".
func TestCodecRefusesUnknownState(t *testing.T) {
	if _, err := encodeRecord("k", &Record{State: "sent"}); err == nil {
		t.Error("encoding an unknown state: no error")
	}
}

// TestDecodeJSONRecord reads the JSON records of the first stores, and
// refuses one whose state was changed.
func TestDecodeJSONRecord(t *testing.T) {
	r := rec("user-1", Enrolled, 2)
	v, _ := json.Marshal(&r)
	got, err := decodeRecord([]byte("user-1"), v)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("decode: %+v, %v", got, err)
	}
	bad := bytes.Replace(v, []byte(`"enrolled"`), []byte(`"enrolmed"`), 1)
	if _, err := decodeRecord([]byte("user-1"), bad); !errors.Is(err, ErrDamaged) {
		t.Errorf("changed state: %v, want ErrDamaged", err)
	}
	if err := checkRecord([]byte("user-1"), bad); !errors.Is(err, ErrDamaged) {
		t.Errorf("checkRecord of a changed state: %v, want ErrDamaged", err)
	}
}

// FuzzDecodeRecord: the decoder never panics, and whatever it accepts
// encodes back to a record it reads the same.
func FuzzDecodeRecord(f *testing.F) {
	r := rec("user-1", Enrolled, 2)
	v, _ := encodeRecord("user-1", &r)
	f.Add([]byte("user-1"), v)
	j, _ := json.Marshal(&r)
	f.Add([]byte("user-1"), j)
	f.Add([]byte(RowKey(3)), []byte{codecVersion, 2, 0, 6, 0, 2})
	job := rec("user-2", Pending, 3)
	job.Generation, job.InFlightJobID = 2, "bulkenroll-00ff"
	v, _ = encodeRecord("user-2", &job)
	f.Add([]byte("user-2"), v)
	f.Fuzz(func(t *testing.T, key, v []byte) {
		got, err := decodeRecord(key, v)
		cerr := checkRecord(key, v)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v is not ErrDamaged", err)
			}
			if cerr == nil && len(v) > 0 && v[0] != codecVersion {
				t.Fatalf("checkRecord passed what decodeRecord refused: %v", err)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("checkRecord refused what decodeRecord read: %v", cerr)
		}
		if part, err := decodeUnlessEnrolled(key, v); err != nil || part.State != got.State || part.Run != got.Run || part.Line != got.Line {
			t.Fatalf("decodeUnlessEnrolled: %+v, %v; decodeRecord: %+v", part, err, got)
		}
		again, err := encodeRecord(string(key), &got)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", got, err)
		}
		back, err := decodeRecord(key, again)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoded record reads %+v, %v; want %+v", back, err, got)
		}
	})
}

// TestProbe: an enrolled record comes back with what a run needs to skip
// it, checksum verified; any other record in full.
func TestProbe(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	en, fl := rec("u-en", Enrolled, 4), rec("u-fl", Failed, 2)
	if err := s.putDurable([]string{"u-en", "u-fl"}, []Record{en, fl}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Probe("u-en")
	want := Record{UserID: "u-en", State: Enrolled, Line: en.Line, Attempts: en.Attempts, Run: en.Run}
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Probe(enrolled) = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if got, ok, err := s.Probe("u-fl"); err != nil || !ok || !reflect.DeepEqual(got, fl) {
		t.Errorf("Probe(failed) = %+v, %v, %v; want %+v", got, ok, err, fl)
	}
	if _, ok, err := s.Probe("nobody"); ok || err != nil {
		t.Errorf("Probe(nobody) = %v, %v", ok, err)
	}
	v, _ := encodeRecord("u-en", &en)
	v[len(v)-6] ^= 1
	if _, err := decodeUnlessEnrolled([]byte("u-en"), v); !errors.Is(err, ErrDamaged) {
		t.Errorf("damaged enrolled record: %v, want ErrDamaged", err)
	}
}
