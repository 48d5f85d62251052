//go:build unix

package main

import (
	"os/signal"
	"syscall"
)

// ignoreFileSizeSignal ignores SIGXFSZ: a file size limit (ulimit -f) then
// fails the write with EFBIG, which the store reports (the run stops and
// says what it could not save), instead of killing the process mid-run.
func ignoreFileSizeSignal() { signal.Ignore(syscall.SIGXFSZ) }
