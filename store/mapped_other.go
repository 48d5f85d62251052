//go:build !linux

package store

import bolt "go.etcd.io/bbolt"

// releaseMapped does nothing here; see mapped_linux.go.
func releaseMapped(*bolt.DB) {}

// populateMap: no such flag here; see mapped_linux.go.
const populateMap = 0
