//go:build !unix

package main

// ignoreFileSizeSignal does nothing: there is no SIGXFSZ here.
func ignoreFileSizeSignal() {}
