//go:build unix

package store

import (
	"errors"
	"syscall"
)

// processExists reports whether a process with this PID exists (on this
// host, in this PID namespace). Signal 0 checks without signalling; EPERM
// means it exists but belongs to someone else.
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
