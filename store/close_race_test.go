package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCloseRacesWrites: writes racing Close are either committed or refused
// with an error; none is accepted and then lost, and none blocks forever.
func TestCloseRacesWrites(t *testing.T) {
	for round := range 20 {
		s, path := openTemp(t)
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range 200 {
					key := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					done := s.PutBatch([]string{key}, []Record{{UserID: key, State: Pending}})
					select {
					case err := <-done:
						if err == nil {
							mu.Lock()
							acked[key] = true
							mu.Unlock()
						} else if !errors.Is(err, errClosed) {
							t.Errorf("PutBatch(%s) = %v, want nil or closed", key, err)
						}
					case <-time.After(10 * time.Second):
						t.Errorf("PutBatch(%s) never answered", key)
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		s2, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for key := range acked {
			if _, found, err := s2.Get(key); err != nil || !found {
				t.Errorf("round %d: %s was acknowledged but is not in the store (%v)", round, key, err)
			}
		}
		s2.Close()
	}
}

// TestDeleteUndoesPut: a queued delete hides the record at once and
// removes it on commit.
func TestDeleteUndoesPut(t *testing.T) {
	s, path := openTemp(t)
	s.Put("u1", Record{UserID: "u1", State: Pending})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Delete("u1")
	if _, found, _ := s.Get("u1"); found {
		t.Error("a deleted record is still seen before the commit")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, found, _ := s2.Get("u1"); found {
		t.Error("a deleted record is still in the store")
	}
}
