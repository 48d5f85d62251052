package manifest

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestShardGolden pins the hash: a change here would move users between
// shards of a migration in progress, so these values must never change.
func TestShardGolden(t *testing.T) {
	cases := []struct {
		id   string
		n    int
		want int
	}{
		{"user-1", 2, 0},             // fnv64a 0xf84ba2aa754a4bd4
		{"user-1", 4, 0},             // fnv64a 0xf84ba2aa754a4bd4
		{"user-1", 10, 8},            // fnv64a 0xf84ba2aa754a4bd4
		{"user-2", 2, 1},             // fnv64a 0xf84ba5aa754a50ed
		{"user-2", 4, 1},             // fnv64a 0xf84ba5aa754a50ed
		{"user-2", 10, 1},            // fnv64a 0xf84ba5aa754a50ed
		{"cust_00000042", 2, 1},      // fnv64a 0x4ed524943fb27d09
		{"cust_00000042", 4, 1},      // fnv64a 0x4ed524943fb27d09
		{"cust_00000042", 10, 5},     // fnv64a 0x4ed524943fb27d09
		{"alice@example.com", 2, 0},  // fnv64a 0x67023fc4a7ff2a46
		{"alice@example.com", 4, 2},  // fnv64a 0x67023fc4a7ff2a46
		{"alice@example.com", 10, 8}, // fnv64a 0x67023fc4a7ff2a46
		{"0001", 2, 0},               // fnv64a 0xc2acd4f9ebc47d82
		{"0001", 4, 2},               // fnv64a 0xc2acd4f9ebc47d82
		{"0001", 10, 8},              // fnv64a 0xc2acd4f9ebc47d82
		{"日本", 2, 1},                 // fnv64a 0x121d7e35a6d3ce91
		{"日本", 4, 1},                 // fnv64a 0x121d7e35a6d3ce91
		{"日本", 10, 9},                // fnv64a 0x121d7e35a6d3ce91
	}
	for _, c := range cases {
		if got := ShardOf(c.id, c.n); got != c.want {
			t.Errorf("ShardOf(%q, %d) = %d, want %d (the shard hash must never change)", c.id, c.n, got, c.want)
		}
		if !(Shard{K: c.want, N: c.n}).Has(c.id) {
			t.Errorf("Shard %d/%d does not have %q", c.want, c.n, c.id)
		}
	}
}

// TestShardHashVectors checks the hash against published FNV-1a 64 test
// vectors, independently of Go's hash/fnv.
func TestShardHashVectors(t *testing.T) {
	for in, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := shardHash(in); got != want {
			t.Errorf("shardHash(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestShardEveryIDInExactlyOneShard(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 16} {
		for i := range 2000 {
			id := fmt.Sprintf("user-%d", i)
			count := 0
			for k := range n {
				if (Shard{K: k, N: n}).Has(id) {
					count++
				}
			}
			if count != 1 {
				t.Fatalf("%q is in %d of %d shards, want exactly 1", id, count, n)
			}
		}
	}
}

func TestShardDistribution(t *testing.T) {
	const ids = 100000
	for _, n := range []int{2, 4, 10, 32} {
		counts := make([]int, n)
		for i := range ids {
			counts[ShardOf(fmt.Sprintf("cust_%08d", i), n)]++
		}
		want := float64(ids) / float64(n)
		for k, c := range counts {
			if dev := math.Abs(float64(c)-want) / want; dev > 0.05 {
				t.Errorf("%d shards: shard %d has %d IDs, %.1f%% off the even %.0f", n, k, c, 100*dev, want)
			}
		}
	}
}

func TestShardZeroHasAll(t *testing.T) {
	var s Shard
	if !s.IsZero() || s.String() != "" {
		t.Errorf("zero Shard: IsZero %v, String %q", s.IsZero(), s.String())
	}
	for _, id := range []string{"", "a", "user-1", strings.Repeat("x", 200)} {
		if !s.Has(id) {
			t.Errorf("zero Shard lacks %q", id)
		}
	}
}

func TestParseShard(t *testing.T) {
	good := map[string]Shard{"0/1": {0, 1}, "0/4": {0, 4}, "3/4": {3, 4}, "99/100": {99, 100}, "007/8": {7, 8}}
	for in, want := range good {
		got, err := ParseShard(in)
		if err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseShard(got.String()); err != nil || back != got {
			t.Errorf("ParseShard(%q.String()) = %v, %v", in, back, err)
		}
	}
	bad := []string{"", "1", "/", "4/4", "5/4", "-1/4", "1/-4", "0/0", "+1/4", " 1/4", "1/4 ", "a/b", "1/4/2", "1.0/4", "0/100001", "0/99999999999"}
	for _, in := range bad {
		if s, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) = %v, want an error", in, s)
		}
	}
}

func TestShardFromEnv(t *testing.T) {
	if s, err := ShardFromEnv(0, "3"); err != nil || !s.IsZero() {
		t.Errorf("ShardFromEnv(0, 3) = %v, %v; want no sharding", s, err)
	}
	if s, err := ShardFromEnv(4, "3"); err != nil || s != (Shard{3, 4}) {
		t.Errorf("ShardFromEnv(4, 3) = %v, %v; want 3/4", s, err)
	}
	if s, err := ShardFromEnv(1, "0"); err != nil || s != (Shard{0, 1}) {
		t.Errorf("ShardFromEnv(1, 0) = %v, %v; want 0/1", s, err)
	}
	for _, c := range []struct {
		n     int
		index string
		want  string
	}{
		{4, "", "JOB_COMPLETION_INDEX is not set"},
		{4, "4", "K must be 0 to 3"},
		{4, "x", "not a non-negative whole number"},
		{4, "-1", "not a non-negative whole number"},
		{-2, "0", "want 1 to"},
	} {
		_, err := ShardFromEnv(c.n, c.index)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ShardFromEnv(%d, %q) = %v, want an error saying %q", c.n, c.index, err, c.want)
		}
	}
}
