//go:build !unix

package photosource

// openFlags are added when opening a local photo; none are needed here.
const openFlags = 0
