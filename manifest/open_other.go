//go:build !unix

package manifest

// openFlags are added when opening a photo; none are needed here.
const openFlags = 0
