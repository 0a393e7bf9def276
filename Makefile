# beacongate: `make run` starts the gateway on the embedded broker,
# `make test` runs every test. cgo is required (librdkafka is bundled by
# confluent-kafka-go and linked statically).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
ARGS    ?=
export CGO_ENABLED := 1

.PHONY: all build run test test-unit test-race vet lint vulncheck fmt-check proto fuzz fuzz-ci bench bench-peers faults clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/beacongate ./cmd/beacongate
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/beacongate-bench ./cmd/beacongate-bench

# Starts the gateway on :8080 (admin on 127.0.0.1:9100) with the embedded
# development broker on 127.0.0.1:9092, data in ./data/kafka, and the
# browser snippet's demo page at http://127.0.0.1:8080/demo.
run: build
	./bin/beacongate -demo $(ARGS)

# The load test behind the sizing figures (docs/performance.md): starts bin/beacongate
# and a development broker on free loopback ports, drives a do-nothing
# baseline server and the gateway with the same closed-loop load, taking
# turns in four rounds of 5 s each (64 connections, 20 s each in all,
# pixel-only ~0.8 KB events: the headline figure), reads the topic back
# and prints throughput, latency, CPU per event, Kafka's bytes per record,
# lost/duplicated/reordered events and the gateway/baseline ratios;
# reports also in bench-out/. Takes about a minute; exit code 1 if anything
# was lost. More flags: BENCH_ARGS='-preset 2kb -rounds 1' (an overload:
# one phase each, so the spool's replay does not run into the baseline's
# turns; bin/beacongate-bench -h).
BENCH_ARGS ?=
bench: build
	./bin/beacongate-bench -spawn -baseline -rounds 4 -conns 64 -duration 20s -preset pixel $(BENCH_ARGS)

# beacongate side by side with its best peer measured so far, nginx +
# lua-resty-kafka, and a do-nothing server (docs/performance.md): RUNS
# rounds (default 3), each server on a fresh broker under the same wrk
# load for DURATION (default 15s), records counted back from the topic;
# output also in bench-out/peers-*.txt. Needs Debian's nginx-light,
# libnginx-mod-http-lua, lua-nginx-kafka, wrk and kcat: the script
# installs them with apt-get when missing and run as root, else prints
# the apt command. Not part of `make test`.
bench-peers: build
	bench/peers/run.sh

# The fault tests alone (the real binary against an in-process broker,
# one injected fault each), printing the one line of figures each test
# logs: the source of the table in docs/delivery.md. RUNS=n repeats them.
RUNS ?= 1
faults:
	@for i in $$(seq $(RUNS)); do \
	  echo "== run $$i of $(RUNS), $$(git rev-parse --short HEAD), $$(date -u +%F)"; \
	  $(GO) test -count=1 -timeout 20m -run '^(TestFault|TestSIGTERMDeliversEveryAcceptedEvent)' -v ./cmd/beacongate/ \
	    | grep -E '^(--- |ok|FAIL)|^ +fault(_[a-z]+)?_test.go:[0-9]+: [^ ]|^ +e2e_test.go:[0-9]+: [0-9]' ; \
	done

# Every test: vet and format, unit and integration tests (real librdkafka
# producer against an in-process Kafka-protocol broker, read back by
# independent clients), the end-to-end test of the built binary with kcat
# and protoc, then everything again under the race detector, and a short
# fixed-length run of every fuzz target (fuzz-ci).
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

# Every fuzz target, briefly: a fixed number of inputs each rather than a
# time budget, so the smoke run is the same length on every machine and
# cannot fail on a deadline that a slow machine misses.
FUZZ_CI_EXECS ?= 2000x
fuzz-ci:
	$(MAKE) fuzz FUZZTIME=$(FUZZ_CI_EXECS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Regenerates the Go code of the record contract (protoc from Debian's
# protobuf-compiler). protoc-gen-go is the `tool` directive of go.mod, at
# the version go.mod pins: `go tool -n` builds it (cached) and prints its
# path for protoc's --plugin.
proto:
	@plugin=$$($(GO) tool -n protoc-gen-go) || exit 1; \
	echo "protoc (protoc-gen-go: $$plugin)"; \
	protoc --plugin=protoc-gen-go="$$plugin" --go_out=. --go_opt=paths=source_relative -I . proto/beacongate/v1/beacon.proto

# A fuzz run of every fuzz target for FUZZTIME each (a duration, or Nx for
# N inputs). The targets are found, not listed: every package of
# `go list ./...`, every test named ^Fuzz in it (`go test -list`).
FUZZTIME ?= 20s
fuzz:
	@list=$$($(GO) test -list '^Fuzz' $$($(GO) list ./...)) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { t[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2 "," t[i]; n = 0 }'); \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz targets found"; exit 1; fi; \
	for pt in $$targets; do \
	  pkg=$${pt%%,*}; t=$${pt#*,}; \
	  echo "== $$pkg $$t"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime=100x $$pkg || exit 1; \
	done

clean:
	rm -rf bin
