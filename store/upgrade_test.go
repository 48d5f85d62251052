package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeOldStore writes a store as the first versions did: JSON records and
// a "seen" bucket with a mark per user (the old encoder is json.Marshal of
// Record, whose tags are unchanged).
func writeOldStore(t *testing.T, recs map[string]Record) string {
	t.Helper()
	s, path := openTemp(t)
	if err := s.Bind("partner-1", "https://example.test"); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		seen, err := tx.CreateBucket(bucketSeen)
		if err != nil {
			return err
		}
		for k, r := range recs {
			v, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketUsers).Put([]byte(k), v); err != nil {
				return err
			}
			if err := seen.Put([]byte(k), []byte{1, 2}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	return path
}

// TestOldStoreOpensAndUpgrades: a store of JSON records opens (checked,
// not refused), reads the same, and the first run's BeginRun rewrites
// every record in the binary form, drops the seen bucket, and leaves every
// record as it was.
func TestOldStoreOpensAndUpgrades(t *testing.T) {
	want := map[string]Record{}
	for i, st := range []State{Enrolled, Enrolled, Rejected, Failed, Pending} {
		r := rec(string(rune('a'+i))+"-user", st, i)
		want[r.UserID] = r
	}
	row := Record{UserID: "", State: Rejected, Line: 9, Error: "user_id: empty", UpdatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	want[RowKey(9)] = row
	path := writeOldStore(t, upgradeBatchTestSize(want))

	ro := reopen(t, path, Options{ReadOnly: true})
	readAll := func(s *Store) map[string]Record {
		got := map[string]Record{}
		for k := range want {
			r, ok, err := s.Get(k)
			if err != nil || !ok {
				t.Fatalf("Get(%q): %v %v", k, ok, err)
			}
			got[k] = r
		}
		return got
	}
	if got := readAll(ro); !reflect.DeepEqual(got, want) {
		t.Fatalf("old store reads\n%v\nwant\n%v", got, want)
	}
	closeOK(t, ro)

	s := reopen(t, path, Options{})
	if _, err := s.BeginRun("m.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := readAll(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("upgraded store reads\n%v\nwant\n%v", got, want)
	}
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSeen) != nil {
			t.Error("the seen bucket is still there")
		}
		if v := tx.Bucket(bucketMeta).Get(keyRecords); string(v) != recordsBinary {
			t.Errorf("meta records = %q, want %q", v, recordsBinary)
		}
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			if v[0] != codecVersion {
				t.Errorf("record %q still in JSON", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Meta(); m.PartnerID != "partner-1" {
		t.Errorf("binding lost: %+v", m)
	}
	closeOK(t, s)
	if err := Check(path); err != nil {
		t.Errorf("Check of the upgraded store: %v", err)
	}
}

// upgradeBatchTestSize adds enough enrolled users to want to take upgrade
// through more than one of its transactions.
func upgradeBatchTestSize(want map[string]Record) map[string]Record {
	for i := range upgradeBatch + 5 {
		r := rec("z-"+time.Duration(i).String(), Enrolled, i%50)
		want[r.UserID] = r
	}
	return want
}
