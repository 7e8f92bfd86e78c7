# greenpoints: make demo runs the issuer with demo data on the embedded
# defaults; make test runs the whole suite. Both install what a fresh Debian
# machine lacks (scripts/install-deps.sh), idempotently.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin/greenpoints
LOAD_RATE ?= 1000
PKGS      := ./...
FUZZTIME  ?= 60s
BENCHTIME ?= 1x

export PATH := $(PATH):/usr/local/go/bin:$(shell $(GO) env GOPATH 2>/dev/null)/bin

.PHONY: all deps build demo test fabric-test fabric-up fabric-down vet fmt-check fuzz bench bench-read load clean

all: build

deps:
	@bash scripts/install-deps.sh

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/greenpoints

demo: deps build
	./$(BIN) demo

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The whole suite: real PostgreSQL clusters are started by the tests themselves.
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 25m $(PKGS)

# The Fabric backend alone: builds the pinned Fabric binaries (cached), starts
# native networks and runs the contract suite on them. Also part of make test.
fabric-test: deps
	$(GO) test -count=1 -timeout 25m ./internal/fabricnet/ ./chaincode/fabric/...

# A development Fabric network in the background (files under FABRIC_DIR),
# with the points chaincode deployed; up prints the flags of
# 'greenpoints serve --ledger fabric' and of the onboarding commands. Both
# are idempotent; down stops it by its PID. See docs/fabric.md, Operations.
FABRIC_DIR ?= .data/fabric
fabric-up: deps build
	$(GO) build -trimpath -o bin/greenpoints-fabric ./cmd/greenpoints-fabric
	./bin/greenpoints-fabric up --dir $(FABRIC_DIR)

fabric-down:
	@if [ -x bin/greenpoints-fabric ]; then ./bin/greenpoints-fabric down --dir $(FABRIC_DIR); \
	else $(GO) run ./cmd/greenpoints-fabric down --dir $(FABRIC_DIR); fi

# Each fuzz target for FUZZTIME (go test allows one target per run).
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

# Benchmarks with production durability; figures go to docs/benchmarks.md.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./chaincode/embedded/

# Balance, lots and history latency among 1,000,000 projected lots (durable
# cluster of its own; a few minutes). Figures go to docs/benchmarks.md.
bench-read: deps
	$(GO) test -run '^$$' -bench '^BenchmarkRead$$' -benchtime 2000x -timeout 60m ./issuer/projection/

# Pipeline load against a fresh durable demo server (bounded in count and
# time, 127.0.0.1 only): intake latency at a fixed rate, then end-to-end
# issuances/s. Figures go to docs/benchmarks.md.
load: deps
	bash scripts/load.sh intake --rate $(LOAD_RATE) --duration 20s --warmup 10000
	bash scripts/load.sh e2e --total 20000 --per-request 100 --warmup 20000
	bash scripts/load.sh e2e --total 40000 --per-request 100 --warmup 20000 --due-after 12s

clean:
	rm -rf bin
