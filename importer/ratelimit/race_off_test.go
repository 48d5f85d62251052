//go:build !race

package ratelimit

// raceEnabled: see race_on_test.go.
const raceEnabled = false
