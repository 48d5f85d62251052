# bulkenroll: build, test, demo, bench.
GO      ?= go
BIN     := bin/bulkenroll
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# An execution count, not a duration: a duration's deadline can fail a fuzz
# target with "context deadline exceeded" on a busy machine (a race in Go's
# fuzzing coordinator, golang/go#75804).
FUZZTIME ?= 20000x

.PHONY: build test vet fuzz demo bench clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) .

vet:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Unit, end-to-end, crash and fault tests (the end-to-end tests build the
# binary themselves, with the race detector), all under the race detector,
# then the rate gate's whole simulator grid without it (under -race it runs a
# subset: the simulator is single-threaded), then each fuzz target briefly
# (its seed corpus already ran with the tests).
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^TestGate' ./importer/ratelimit/
	$(MAKE) fuzz

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzReader$$' -fuzztime=$(FUZZTIME) ./manifest/
	$(GO) test -run='^$$' -fuzz='^FuzzParseCreatedAt$$' -fuzztime=$(FUZZTIME) ./manifest/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRecord$$' -fuzztime=$(FUZZTIME) ./store/

# The main job on the embedded sandbox: import the samples, run again to show
# every row skipped, show the status.
demo: build
	@sh samples/demo.sh $(BIN)

# Throughput against a floor, memory, re-run and validate speed, and the Go
# benchmarks of the per-row hot path. Writes bench-results/BENCHMARKS.md.
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./manifest/ ./store/ ./importer/
	BULKENROLL_BENCH=1 $(GO) test -run='^TestBenchHarness$$' -count=1 -timeout 60m -v .

clean:
	rm -rf bin bench-results
