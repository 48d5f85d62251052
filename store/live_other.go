//go:build !unix

package store

// processExists cannot check other processes here; the snapshot's freshness
// decides alone.
func processExists(pid int) bool { return pid > 0 }
