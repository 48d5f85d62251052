//go:build race

package testkit

// Race is true when the tests run under the race detector; Binary then
// builds with it too.
const Race = true
