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

.PHONY: all deps build demo test fabric-test vet fmt-check fuzz bench load clean

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

# Each fuzz target for FUZZTIME (go test allows one target per run).
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

# Benchmarks with production durability; figures go to docs/benchmarks.md.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./chaincode/embedded/

# Pipeline load against a fresh durable demo server (bounded in count and
# time, 127.0.0.1 only): intake latency at a fixed rate, then end-to-end
# issuances/s. Figures go to docs/benchmarks.md.
load: deps
	bash scripts/load.sh intake --rate $(LOAD_RATE) --duration 20s
	bash scripts/load.sh e2e --total 20000 --per-request 100

clean:
	rm -rf bin
