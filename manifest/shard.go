package manifest

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard selects the part of a manifest one process imports, so that N
// processes (N stores) can share one manifest: a row belongs to shard K of N
// when the FNV-1a 64-bit hash of its user_id bytes, modulo N, is K. The hash
// has no seed: every process, on every machine and in every release, puts a
// user in the same shard (the tests pin golden values).
//
// The zero value means no sharding: Has is always true.
type Shard struct {
	// K is this shard's index, 0 ≤ K < N.
	K int
	// N is the number of shards; 0 means no sharding.
	N int
}

// MaxShards bounds N: far more shards than any import needs, and small
// enough that a typo (--shard 0/10000000) is caught.
const MaxShards = 100000

// IsZero reports whether s is the zero value: no sharding.
func (s Shard) IsZero() bool { return s.N == 0 }

// String returns "K/N", or "" for the zero value; ParseShard reads it back.
func (s Shard) String() string {
	if s.IsZero() {
		return ""
	}
	return strconv.Itoa(s.K) + "/" + strconv.Itoa(s.N)
}

// Has reports whether the row of userID belongs to s. The zero Shard has
// every row.
func (s Shard) Has(userID string) bool {
	if s.N <= 1 {
		return true
	}
	return ShardOf(userID, s.N) == s.K
}

// ShardOf returns the shard (0 to n-1) of userID among n shards:
// FNV-1a 64 of the user_id's bytes, modulo n. n must be at least 1.
func ShardOf(userID string, n int) int {
	return int(shardHash(userID) % uint64(n))
}

// shardHash is FNV-1a 64 of s's bytes.
func shardHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// ParseShard reads "K/N" (decimal, 0 ≤ K < N ≤ MaxShards), as given to --shard.
func ParseShard(s string) (Shard, error) {
	ks, ns, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want K/N, e.g. 0/4 for the first of four shards", s)
	}
	n, err := parseCount(ns)
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: N: %w", s, err)
	}
	k, err := parseCount(ks)
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: K: %w", s, err)
	}
	return newShard(k, n, fmt.Sprintf("shard %q", s))
}

// ShardFromEnv builds the shard of a Kubernetes Indexed Job's pod: shards is
// --shards N and index the value of JOB_COMPLETION_INDEX (0-based). shards 0
// means no sharding (the zero Shard), whatever index says.
func ShardFromEnv(shards int, index string) (Shard, error) {
	if shards == 0 {
		return Shard{}, nil
	}
	if shards < 0 || shards > MaxShards {
		return Shard{}, fmt.Errorf("--shards %d: want 1 to %d", shards, MaxShards)
	}
	if index == "" {
		return Shard{}, fmt.Errorf("--shards %d: JOB_COMPLETION_INDEX is not set (it is set in the pods of an Indexed Job; elsewhere use --shard K/N)", shards)
	}
	k, err := parseCount(index)
	if err != nil {
		return Shard{}, fmt.Errorf("JOB_COMPLETION_INDEX %q: %w", index, err)
	}
	return newShard(k, shards, fmt.Sprintf("JOB_COMPLETION_INDEX %q with --shards %d", index, shards))
}

func newShard(k, n int, what string) (Shard, error) {
	switch {
	case n < 1 || n > MaxShards:
		return Shard{}, fmt.Errorf("%s: N must be 1 to %d", what, MaxShards)
	case k >= n:
		return Shard{}, fmt.Errorf("%s: K must be 0 to %d (shards count from 0)", what, n-1)
	}
	return Shard{K: k, N: n}, nil
}

// parseCount reads a non-negative decimal integer: digits only (no sign,
// no spaces), at most 9 of them.
func parseCount(s string) (int, error) {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a non-negative whole number", s)
	}
	return strconv.Atoi(s)
}
