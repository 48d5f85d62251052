package store

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// releaseMapped tells the kernel that the process no longer needs the pages
// of the store file it has read through bbolt's read-only shared memory map.
// They stay in the page cache, and a later read maps them back without I/O;
// without this, every page a run ever read counts in its resident set, which
// would then grow with the size of the store rather than stay flat.
func releaseMapped(db *bolt.DB) {
	_ = viewTx(db, func(tx *bolt.Tx) error {
		releaseTx(tx)
		return nil
	})
}

// releaseTx is releaseMapped within the read transaction tx (which holds
// bbolt's map lock: the map cannot be moved or unmapped until it ends, and
// it covers at least tx.Size()).
func releaseTx(tx *bolt.Tx) {
	size := tx.Size()
	if size <= 0 {
		return
	}
	addr := tx.DB().Info().Data
	// The map is MAP_SHARED and PROT_READ: dropping its pages loses
	// nothing, and a concurrent reader just faults them back in.
	syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
}
