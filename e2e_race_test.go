//go:build race && unix

package main

// Under -race the end-to-end tests build the binary with the race detector
// as well, so that a race in a real run fails them.
func init() { e2eRace = true }
