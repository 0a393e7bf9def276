# beacongate: `make run` starts the gateway on the embedded broker,
# `make test` runs every test. cgo is required (librdkafka is bundled by
# confluent-kafka-go and linked statically).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
ARGS    ?=
export CGO_ENABLED := 1

.PHONY: all build run test test-unit test-race vet lint vulncheck fmt-check proto fuzz fuzz-ci bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/beacongate ./cmd/beacongate
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/beacongate-bench ./cmd/beacongate-bench

# Starts the gateway on :8080 (admin on 127.0.0.1:9100) with the embedded
# development broker on 127.0.0.1:9092, data in ./data/kafka, and the
# browser snippet's demo page at http://127.0.0.1:8080/demo.
run: build
	./bin/beacongate -demo $(ARGS)

# The load test behind the sizing figures (issue #3): starts bin/beacongate
# and a development broker on free loopback ports, drives a do-nothing
# baseline server and then the gateway with the same closed-loop load
# (64 connections, 20 s each, pixel-only ~0.8 KB events: the headline
# figure), reads the topic back and prints throughput, latency, CPU per
# event, lost/duplicated/reordered events and the gateway/baseline ratios;
# reports also in bench-out/. Takes about a minute; exit code 1 if anything
# was lost. More flags: BENCH_ARGS='-preset 2kb' (bin/beacongate-bench -h).
BENCH_ARGS ?=
bench: build
	./bin/beacongate-bench -spawn -baseline -conns 64 -duration 20s -preset pixel $(BENCH_ARGS)

# Every test: vet and format, unit and integration tests (real librdkafka
# producer against an in-process Kafka-protocol broker, read back by
# independent clients), the end-to-end test of the built binary with kcat
# and protoc, then everything again under the race detector.
test: fmt-check vet lint test-unit test-race fuzz-ci

test-unit:
	$(GO) test -count=1 -timeout 15m ./...

test-race:
	$(GO) test -count=1 -race -timeout 20m ./...

vet:
	$(GO) vet ./...

# staticcheck at a pinned version (from the Go module proxy).
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Known vulnerabilities in the code and its dependencies. Needs the Go
# vulnerability database (vuln.go.dev), which the build environment of this
# repository cannot reach, so it is not part of `make test`.
vulncheck:
	$(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...

# Every fuzz target of every decoder of untrusted input, a few seconds each.
fuzz-ci:
	$(MAKE) fuzz FUZZTIME=4s

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Regenerates the Go code of the record contract (protoc from Debian's
# protobuf-compiler; protoc-gen-go at the version pinned in go.mod).
proto:
	$(GO) build -o bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	protoc --plugin=protoc-gen-go=bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative -I . proto/beacongate/v1/beacon.proto

# A short fuzz run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in ./ingest/form ./ingest/event ./ingest/record ./ingest ./internal/kafka/spool; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime=100x $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
