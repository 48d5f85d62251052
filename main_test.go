package main

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// e2eParallel is how many parallel tests of this package run at once when
// -parallel is not given. The end-to-end tests spend most of their time
// waiting on a subprocess, a sandbox's latency or a rate limit, not on a
// CPU, so more of them than there are CPUs keep the machine busy; the
// default (GOMAXPROCS) leaves a 2-core machine mostly idle.
const e2eParallel = 8

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && runtime.GOMAXPROCS(0) < e2eParallel {
		flag.Set("test.parallel", strconv.Itoa(e2eParallel))
	}
	os.Exit(m.Run())
}
