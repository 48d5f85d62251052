package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBindProduct: a new store takes the first run's product and keeps it;
// the other product is refused with an error naming both, and a refusal
// writes nothing.
func TestBindProduct(t *testing.T) {
	for _, first := range Products {
		t.Run(string(first), func(t *testing.T) {
			other := Compare
			if first == Compare {
				other = Backfill
			}
			s, path := openTemp(t)
			if p, err := s.Product(); err != nil || p != "" {
				t.Errorf("a new store's Product() = %q, %v; want none yet", p, err)
			}
			for _, p := range Products {
				if err := s.CheckProduct(p); err != nil {
					t.Errorf("CheckProduct(%s) on a new store: %v", p, err)
				}
			}
			if err := s.BindProduct(first); err != nil {
				t.Fatalf("first BindProduct: %v", err)
			}
			if _, err := s.BeginRun("m.csv", time.Now()); err != nil {
				t.Fatal(err)
			}
			closeOK(t, s)
			before := fileSum(t, path)
			for _, ro := range []bool{true, false} {
				s := reopen(t, path, Options{ReadOnly: ro})
				if p, err := s.Product(); err != nil || p != first {
					t.Errorf("Product() = %q, %v; want %s", p, err, first)
				}
				if m, err := s.Meta(); err != nil || m.Product != first {
					t.Errorf("Meta().Product = %q, %v; want %s", m.Product, err, first)
				}
				if err := s.CheckProduct(first); err != nil {
					t.Errorf("CheckProduct(%s): %v", first, err)
				}
				err := s.CheckProduct(other)
				var pm *ProductMismatchError
				if !errors.As(err, &pm) || !errors.Is(err, ErrProductMismatch) || pm.Have != first || pm.Want != other {
					t.Fatalf("CheckProduct(%s) on a %s store: %v, want a *ProductMismatchError", other, first, err)
				}
				for _, want := range []string{path, string(first), string(other), "--store"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message %q does not name %q", err, want)
					}
				}
				if !ro {
					if err := s.BindProduct(first); err != nil {
						t.Errorf("BindProduct(%s) again: %v", first, err)
					}
					if err := s.BindProduct(other); !errors.As(err, &pm) {
						t.Errorf("BindProduct(%s) on a %s store: %v, want a *ProductMismatchError", other, first, err)
					}
				}
				closeOK(t, s)
			}
			if fileSum(t, path) != before {
				t.Errorf("checks and refused binds wrote to the store")
			}
		})
	}
}

// TestProductOfEarlierStores: a store made before products were recorded
// holds backfill once it has a run or a record, and refuses compare; an
// unused one may take either. Its identity is recorded with the product.
func TestProductOfEarlierStores(t *testing.T) {
	old := func(t *testing.T, fill func(*Store)) *Store {
		s, _ := openTemp(t)
		t.Cleanup(func() { s.Close() })
		if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyStoreID) }); err != nil {
			t.Fatal(err)
		}
		fill(s)
		return s
	}
	withRun := old(t, func(s *Store) {
		if _, err := s.BeginRun("m.csv", time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	withRecord := old(t, func(s *Store) {
		if err := s.putDurable([]string{"u1"}, []Record{rec("u1", Enrolled, 1)}); err != nil {
			t.Fatal(err)
		}
	})
	for name, s := range map[string]*Store{"with a run": withRun, "with a record": withRecord} {
		if p, err := s.Product(); err != nil || p != Backfill {
			t.Errorf("%s: Product() = %q, %v; want backfill", name, p, err)
		}
		if err := s.BindProduct(Backfill); err != nil {
			t.Errorf("%s: BindProduct(backfill): %v", name, err)
		}
		if err := s.BindProduct(Compare); !errors.Is(err, ErrProductMismatch) {
			t.Errorf("%s: BindProduct(compare): %v, want ErrProductMismatch", name, err)
		}
	}
	unused := old(t, func(*Store) {})
	if _, err := unused.JobID("u1", 0); err == nil {
		t.Errorf("JobID of a store without an identity: no error")
	}
	if err := unused.BindProduct(Compare); err != nil {
		t.Fatalf("BindProduct(compare) on an unused store: %v", err)
	}
	if p, _ := unused.Product(); p != Compare {
		t.Errorf("Product() = %q, want compare", p)
	}
	if _, err := unused.JobID("u1", 0); err != nil {
		t.Errorf("JobID after BindProduct: %v", err)
	}
	if err := unused.BindProduct("selfie"); err == nil || !strings.Contains(err.Error(), "unknown product") {
		t.Errorf("BindProduct of an unknown product: %v", err)
	}
}

// TestJobID: a job_id is the same for the same store, user and generation,
// and differs when any of them does; it survives reopening the store.
func TestJobID(t *testing.T) {
	s, path := openTemp(t)
	a, err := s.JobID("u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "bulkenroll-") || len(a) != len("bulkenroll-")+32 || strings.Contains(a, "u1") {
		t.Errorf("JobID = %q: want bulkenroll- and 32 hex digits, without the user_id", a)
	}
	seen := map[string]string{a: "u1/0"}
	for _, c := range []struct {
		user string
		gen  uint64
	}{{"u1", 1}, {"u2", 0}, {"u10", 0}, {"u", 10}} {
		id, err := s.JobID(c.user, c.gen)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("JobID(%s, %d) = JobID of %s: %s", c.user, c.gen, prev, id)
		}
		seen[id] = c.user
	}
	closeOK(t, s)
	s = reopen(t, path, Options{ReadOnly: true})
	if again, err := s.JobID("u1", 0); err != nil || again != a {
		t.Errorf("after reopening: %q, %v; want %q", again, err, a)
	}
	other, _ := openTemp(t)
	defer other.Close()
	if b, err := other.JobID("u1", 0); err != nil || b == a {
		t.Errorf("another store's JobID(u1, 0) = %q, %v; want another job_id than %q", b, err, a)
	}
}

// TestParseProduct names the products and refuses others.
func TestParseProduct(t *testing.T) {
	for _, p := range Products {
		if got, err := ParseProduct(string(p)); err != nil || got != p {
			t.Errorf("ParseProduct(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParseProduct("Compare"); err == nil {
		t.Error("ParseProduct(Compare): no error")
	}
}
