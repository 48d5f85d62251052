package store

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func sampleLive(t *testing.T) Live {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	return Live{PID: os.Getpid(), Host: host, RunID: 3, Manifest: "m.csv", Shard: "1/4",
		Started: now.Add(-time.Hour), Updated: now, Total: 1000, Rows: 400, Enrolled: 300, Skipped: 50,
		Rejected: 20, Failed: 10, Pending: 20, RowsPerSecond: 12.5, Rate: 20, LearnedRate: 18, ETASeconds: 48,
		LastSuccess: now.Add(-time.Second)}
}

func TestLiveWriteRead(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "s.db")
	if got := LivePath(storePath); got != storePath+".live.json" {
		t.Errorf("LivePath = %q", got)
	}
	if _, err := ReadLive(storePath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLive of none: %v, want fs.ErrNotExist", err)
	}
	l := sampleLive(t)
	if err := WriteLive(storePath, l); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLive(storePath)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(l.Started) || !got.Updated.Equal(l.Updated) || !got.LastSuccess.Equal(l.LastSuccess) {
		t.Errorf("times differ: %+v vs %+v", got, l)
	}
	got.Started, got.Updated, got.LastSuccess = l.Started, l.Updated, l.LastSuccess
	if got != l {
		t.Errorf("ReadLive = %+v, want %+v", got, l)
	}
	fi, err := os.Stat(LivePath(storePath))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// snake_case keys
	var m map[string]any
	b, _ := os.ReadFile(LivePath(storePath))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pid", "host", "run_id", "manifest", "shard", "started", "updated", "total", "rows",
		"enrolled", "skipped", "rejected", "failed", "pending", "rows_per_second", "rate", "learned_rate",
		"eta_seconds", "last_success", "done"} {
		if _, ok := m[k]; !ok {
			t.Errorf("live JSON lacks %q: %s", k, b)
		}
	}
	// No temporary files are left.
	entries, _ := os.ReadDir(filepath.Dir(storePath))
	if len(entries) != 1 {
		t.Errorf("folder holds %d files, want the snapshot only", len(entries))
	}
	if err := removeLive(storePath); err != nil {
		t.Fatal(err)
	}
	if err := removeLive(storePath); err != nil {
		t.Errorf("removeLive of none: %v", err)
	}
	if _, err := ReadLive(storePath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLive after removeLive: %v", err)
	}
}

func TestLiveGarbled(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(LivePath(storePath), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLive(storePath); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLive of garbage: %v, want a decoding error", err)
	}
}

// TestLiveAtomic reads the snapshot while it is replaced again and again:
// every read must decode to a whole snapshot.
func TestLiveAtomic(t *testing.T) {
	storePath := filepath.Join(t.TempDir(), "s.db")
	l := sampleLive(t)
	l.Manifest = "a-long-manifest-name-to-make-the-file-bigger.csv"
	if err := WriteLive(storePath, l); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			l.Rows = i
			if err := WriteLive(storePath, l); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2000 {
		if _, err := ReadLive(storePath); err != nil {
			t.Errorf("read during writes: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

func TestLiveAlive(t *testing.T) {
	l := sampleLive(t)
	now := l.Updated.Add(time.Second)
	if !l.Alive(now) {
		t.Fatalf("a fresh snapshot of this process is not alive")
	}
	cases := map[string]func(*Live) time.Time{
		"done":         func(l *Live) time.Time { l.Done = true; return now },
		"stale":        func(l *Live) time.Time { return l.Updated.Add(LiveStaleAfter + time.Second) },
		"other host":   func(l *Live) time.Time { l.Host += "-elsewhere"; return now },
		"no pid":       func(l *Live) time.Time { l.PID = 0; return now },
		"dead pid":     func(l *Live) time.Time { l.PID = deadPID(t); return now },
		"future clock": func(l *Live) time.Time { return l.Updated.Add(-2 * LiveStaleAfter) },
	}
	for name, mut := range cases {
		c := l
		at := mut(&c)
		if c.Alive(at) {
			t.Errorf("%s: Alive = true", name)
		}
	}
	// A process of another user (pid 1: EPERM when not root) counts as existing.
	c := l
	c.PID = 1
	if !c.Alive(now) {
		t.Errorf("pid 1: Alive = false, want true (it exists)")
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

func TestBindShard(t *testing.T) {
	// A new store takes the first run's shard and keeps it.
	s, path := openTemp(t)
	if err := s.BindShard("1/4"); err != nil {
		t.Fatalf("first BindShard: %v", err)
	}
	if err := s.BindShard("1/4"); err != nil {
		t.Errorf("same shard again: %v", err)
	}
	if _, err := s.BeginRun("m.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	closeOK(t, s)
	s = reopen(t, path, Options{})
	if m, err := s.Meta(); err != nil || m.Shard != "1/4" {
		t.Errorf("Meta().Shard = %q, %v; want 1/4", m.Shard, err)
	}
	if err := s.BindShard("1/4"); err != nil {
		t.Errorf("same shard after reopening: %v", err)
	}
	for _, other := range []string{"2/4", "1/8", ""} {
		err := s.BindShard(other)
		if !errors.Is(err, ErrShardMismatch) {
			t.Errorf("BindShard(%q) on a 1/4 store: %v, want ErrShardMismatch", other, err)
		}
	}
	if m, _ := s.Meta(); m.Shard != "1/4" {
		t.Errorf("a refused BindShard changed the shard to %q", m.Shard)
	}

	// A store of the whole manifest that has runs refuses a shard.
	s2, _ := openTemp(t)
	defer s2.Close()
	if err := s2.BindShard(""); err != nil {
		t.Errorf("BindShard(\"\") on a new store: %v", err)
	}
	if _, err := s2.BeginRun("m.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s2.BindShard(""); err != nil {
		t.Errorf("BindShard(\"\") on an unsharded store: %v", err)
	}
	if err := s2.BindShard("0/2"); !errors.Is(err, ErrShardMismatch) {
		t.Errorf("BindShard(0/2) on a store with unsharded runs: %v, want ErrShardMismatch", err)
	}

	// Records without runs count too.
	s3, _ := openTemp(t)
	defer s3.Close()
	if err := s3.putDurable([]string{"u1"}, []Record{rec("u1", Enrolled, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s3.BindShard("0/2"); !errors.Is(err, ErrShardMismatch) {
		t.Errorf("BindShard(0/2) on a store with records: %v, want ErrShardMismatch", err)
	}
}
