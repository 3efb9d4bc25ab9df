GO      ?= go
BIN     := bin
LIB     := lib
# Packages whose tests are cheap enough to run under the race detector.
RACE_PKGS := ./transport/... ./core/... ./alloc/... ./mesh/... ./tests/...

.PHONY: all build lib test test-go test-race fuzz bench demo clean vet

all: build

build:
	$(GO) build ./...
	$(GO) build -o $(BIN)/bootstrap ./cmd/bootstrap

lib:
	@mkdir -p $(LIB)
	$(GO) build -buildmode=c-shared -o $(LIB)/libmesh.so ./capi

vet:
	$(GO) vet ./...

test: vet test-race test-go

# Race-enabled run of the lower layers; fuzz seed corpora run as ordinary tests.
test-race:
	$(GO) test -race -count=1 -timeout 8m $(RACE_PKGS)

test-go:
	$(GO) test -count=1 -timeout 8m ./...

# Longer fuzzing: FUZZTIME per target (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzParseAddr -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run XXX -fuzz FuzzFrameDecoder -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run XXX -fuzz FuzzParseProcID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzParseActorID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzParsePortID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzDecodeEnvelope -fuzztime $(FUZZTIME) ./core/

BENCHTIME ?= 2s
bench:
	$(GO) test -run XXX -bench . -benchmem -benchtime $(BENCHTIME) ./transport/ ./core/

demo: build
	$(GO) run ./cmd/demo

clean:
	rm -rf $(BIN) $(LIB)
	$(GO) clean -testcache
