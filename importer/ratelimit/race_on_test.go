//go:build race

package ratelimit

// raceEnabled: the tests run under the race detector, which makes the
// simulator (single-threaded, on a virtual clock) some ten times slower;
// the grid then runs its race subset only (the full grid runs without
// -race, see TestGateGrid).
const raceEnabled = true
