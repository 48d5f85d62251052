//go:build unix

package photosource

import "syscall"

// openFlags are added when opening a local photo. O_NONBLOCK makes opening a
// named pipe return at once, should one replace the photo between the Stat
// and the open; it changes nothing for regular files.
const openFlags = syscall.O_NONBLOCK
