//go:build unix

package testkit

import "syscall"

// processAlive reports whether process pid exists.
func processAlive(pid int) bool { return syscall.Kill(pid, 0) != syscall.ESRCH }
