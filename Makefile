GO      ?= go
BIN     := bin
LIB     := lib
# Packages whose tests are cheap enough to run under the race detector.
RACE_PKGS := ./transport/... ./core/... ./internal/... ./alloc/... ./mesh/... ./tests/...

.PHONY: all build lib test test-go test-race test-c fuzz bench bench-c bench-ab demo clean vet

all: build

build:
	$(GO) build ./...
	$(GO) build -o $(BIN)/bootstrap ./cmd/bootstrap

lib: $(LIB)/libmesh.so

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-ed:"; echo "$$unformatted"; exit 1; fi

test: vet test-race test-go test-c

# Race-enabled run of the lower layers; fuzz seed corpora run as ordinary tests.
test-race:
	$(GO) test -race -count=1 -timeout 8m $(RACE_PKGS)

test-go:
	$(GO) test -count=1 -timeout 8m ./...

# The C ABI: libmesh.so and the bootstrap binary, then the C programs of
# tests/c compiled with the flags the header promises to support, run
# natively and again under Valgrind's memcheck when it is installed.
#
# Valgrind and the Go runtime: memcheck runs the programs to the end and
# its leak check sees every C heap block (the library's malloc'd outputs,
# the tests' own), so "definitely lost" blocks fail the run. What memcheck
# cannot follow is the Go runtime itself: goroutine stacks live in memory
# Go maps and switches to on its own, and some of Go's raw syscalls pass
# buffers memcheck believes unaddressable, so it reports thousands of
# false "invalid read/write" errors inside libmesh.so. tests/c/valgrind.supp
# suppresses exactly the errors whose innermost frame is in libmesh.so
# (plus three Go syscall wrappers); errors in the C programs' own code
# still fail. The Go heap is invisible to memcheck (Go allocates with mmap,
# not malloc): tests/c/memgrowth.c covers it by checking that repeated
# create/free cycles do not grow the resident set or leak fds.
C_TESTS  := canonical foreign_actor bad_input ports memgrowth bench
C_BUILD  := tests/c/build
C_FLAGS  := -std=c11 -Wall -Wextra -Werror -O2 -Iinclude
VALGRIND := valgrind -q --suppressions=tests/c/valgrind.supp --leak-check=full \
	--show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99

$(C_BUILD)/%: tests/c/%.c tests/c/testutil.h include/mesh.h $(LIB)/libmesh.so
	@mkdir -p $(C_BUILD)
	$(CC) $(C_FLAGS) -o $@ $< -L$(LIB) -lmesh -Wl,-rpath,$(CURDIR)/$(LIB)

# Always asked of go build, whose cache knows what changed.
$(LIB)/libmesh.so: FORCE
	@mkdir -p $(LIB)
	$(GO) build -buildmode=c-shared -o $(LIB)/libmesh.so ./capi

test-c: $(addprefix $(C_BUILD)/,$(C_TESTS))
	$(GO) build -o $(BIN)/bootstrap ./cmd/bootstrap
	$(C_BUILD)/canonical $(BIN)/bootstrap
	$(C_BUILD)/foreign_actor
	$(C_BUILD)/bad_input $(BIN)/bootstrap
	$(C_BUILD)/ports
	ACTORMESH_RECV_SPIN_US=0 $(C_BUILD)/ports # receives that sleep at once
	$(C_BUILD)/memgrowth 5
	@if command -v valgrind >/dev/null; then \
		for t in "canonical $(BIN)/bootstrap" "foreign_actor" "bad_input $(BIN)/bootstrap" ports; do \
			echo "valgrind memcheck: $$t"; \
			$(VALGRIND) --log-file=$(C_BUILD)/valgrind.log $(C_BUILD)/$$t >/dev/null \
				|| { cat $(C_BUILD)/valgrind.log; exit 1; }; \
		done; \
	else echo "valgrind is not installed: memcheck pass skipped"; fi

FORCE:

# Round trip through the C ABI against the Go SDK, in alternating blocks.
bench-c:
	$(GO) test -run XXX -bench CapiRoundTrip -benchtime 20000x ./tests/

# Longer fuzzing: FUZZTIME per target, a count of executions (30-100 s
# each here). A duration works too, but Go 1.26's fuzzer can fail a
# duration-bound run at its deadline with "context deadline exceeded" and
# no failing input (go.dev/issue/75804, fixed in Go 1.27); a count has no
# deadline to race.
FUZZTIME ?= 1000000x
fuzz:
	$(GO) test -run XXX -fuzz FuzzParseAddr -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run XXX -fuzz FuzzFrameDecoder -fuzztime $(FUZZTIME) ./transport/
	$(GO) test -run XXX -fuzz FuzzParseProcID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzParseActorID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzParsePortID -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzDecodeEnvelope -fuzztime $(FUZZTIME) ./core/
	$(GO) test -run XXX -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/codec/
	$(GO) test -run XXX -fuzz FuzzCastHops -fuzztime $(FUZZTIME) ./mesh/
	$(GO) test -run XXX -fuzz FuzzCastMemo -fuzztime $(FUZZTIME) ./mesh/

BENCHTIME ?= 2s
# Every benchmark beside its same-run baseline. The process-heavy ones
# (allocation, canonical flow, cast+gather over 72 processes) run a fixed
# number of times instead of for BENCHTIME.
bench:
	$(GO) test -run XXX -bench . -benchmem -benchtime $(BENCHTIME) ./transport/ ./core/
	$(GO) test -run XXX -bench CastHopsInProcess -benchmem -benchtime 5000x ./mesh/
	$(GO) test -run XXX -bench Allocate -benchtime 3x ./alloc/
	$(GO) test -run XXX -bench CanonicalFlow -benchtime 200x ./tests/
	$(GO) test -run XXX -bench 'CastGather64$$' -benchtime 1000x ./tests/
	$(GO) test -run XXX -bench SpawnProcs64 -benchtime 5x ./tests/
	$(MAKE) bench-c

# The procs of this tree against those of AB_REF (any git revision with
# the same wire format), in one run: BenchmarkCastGather64AB. The other
# bootstrap binary is built in a temporary worktree, removed afterwards.
AB_COUNT ?= 3
bench-ab:
	@test -n "$(AB_REF)" || { echo "usage: make bench-ab AB_REF=<git revision>"; exit 2; }
	@dir=$$(mktemp -d) && trap 'git worktree remove --force "$$dir/src"; rm -rf "$$dir"' EXIT && \
	git worktree add -q --detach "$$dir/src" "$(AB_REF)" && \
	(cd "$$dir/src" && $(GO) build -o "$$dir/bootstrap" ./cmd/bootstrap) && \
	ACTORMESH_AB_BOOTSTRAP="$$dir/bootstrap" $(GO) test -run XXX -bench CastGather64AB -benchtime 1000x -count $(AB_COUNT) ./tests/

demo: build
	$(GO) run ./cmd/demo

clean:
	rm -rf $(BIN) $(LIB) $(C_BUILD)
	$(GO) clean -testcache
