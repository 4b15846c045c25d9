# initprof — see README.md. Every target is safe to run on a fresh Debian 12 machine
# after `make deps` (which .ci/run and `make demo` call for you).

GO        ?= go
BIN       := bin/initprof
GOFLAGS_B := -trimpath
# initprof runs as PID 1 inside foreign root filesystems, so it must be static.
export CGO_ENABLED ?= 0

.PHONY: fidelity fidelity-bench all build build-arm64 samples test test-short bench demo generate generate-check lint deps clean arm64-kernel arm64-sysroot test-arm64 arm64-samples rust-samples rust-ordered rust-bottlecap-samples rust-bottlecap-ordered demo-bottlecap demo-bottlecap-compare

all: build

build:
	$(GO) build $(GOFLAGS_B) -o $(BIN) ./cmd/initprof

build-arm64:
	GOARCH=arm64 $(GO) build $(GOFLAGS_B) -o bin/initprof-arm64 ./cmd/initprof

# Debian's arm64 cloud kernel for the microVM, cached where `initprof doctor` looks (no-op when cached).
arm64-kernel:
	bash scripts/arm64-kernel.sh

# Debian's arm64 libc6 (+ libc6-dbg for ld.so symbols), libcurl, runc, crun and their
# closure, in the per-user cache where `initprof run --arch arm64` looks for them
# (the same place `initprof doctor --fix` fills); build/arm64-sysroot links to it
# for the cross builds of the samples.
ARM64_SYSROOT := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/initprof/arm64/sysroot
arm64-sysroot:
	bash scripts/arm64-sysroot.sh $(ARM64_SYSROOT)
	@mkdir -p build; [ -e build/arm64-sysroot ] || ln -s $(ARM64_SYSROOT) build/arm64-sysroot

arm64-samples: arm64-sysroot
	$(MAKE) -C testdata/samples arm64

# Boots the arm64 microVM and profiles the arm64 samples in it.
test-arm64: arm64-kernel arm64-samples build-arm64
	$(GO) test -count=1 -timeout 10m ./container/vm

# The functions the Lambda model is held against (README "How close to Lambda").
fidelity:
	$(MAKE) -C testdata/fidelity

# The README's "How close to Lambda" table (writes build/fidelity/how-close.md).
fidelity-bench: fidelity samples
	cd coldstart && INITPROF_FIDELITY_RUNS=$${RUNS:-20} $(GO) test -count=1 -run '^$$' -bench Fidelity -benchtime 1x -timeout 30m .
	cat build/fidelity/how-close.md

# The sample extensions every test profiles (Go and C), built with known flags.
samples:
	$(MAKE) -C testdata/samples

# The README's test command. Needs root for the BPF, runc and qemu tests; without
# root those tests skip and say why.
test: build samples
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) test -p 1 -count=1 -timeout 60m $$($(GO) list ./... | grep -v /container/vm$$)

test-short:
	$(GO) test -short -count=1 ./...

bench: build samples
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# Regenerates the bpf2go output for amd64 and arm64 (needs clang-14 and libbpf-dev).
generate:
	$(GO) generate ./probes/...

# Fails when the committed bpf2go output differs from a fresh `make generate`.
generate-check: generate
	@git diff --exit-code --stat -- probes/ || { echo "probes: committed bpf2go output is stale; run 'make generate' and commit"; exit 1; }

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

deps:
	bash .ci/deps

# The main job, on a fresh Debian 12 machine: install what is missing, build
# initprof and the Rust sample's linker-flag variants, and compare them in the
# Lambda-like container with a simulated provided.al2023-like runtime.
DEMO_OUT ?= out/demo
DEMO_RUNS ?= 20
RUST_VARIANTS := prod o3 lazy relr static-pie nonpie ordered
# The bottlecap-sized sample (crates.io dependencies, ~8 MB stripped): the
# variants its Makefile's `demo` target builds.
BOTTLECAP_VARIANTS := prod o3 lazy static-pie ordered
demo: deps build samples rust-samples rust-ordered rust-bottlecap-samples rust-bottlecap-ordered
	@echo "== initprof doctor"; ./$(BIN) doctor || true
	@echo; echo "== initprof inspect (load-cost facts of the builds)"
	./$(BIN) inspect build/samples/rustext-prod build/samples/rustext-lazy build/samples/rustext-static-pie
	@echo; echo "== initprof compare: $(DEMO_RUNS) interleaved cold starts per build"
	./$(BIN) compare -n $(DEMO_RUNS) --name datadog-agent --runtime-init 15ms --out $(DEMO_OUT) --force \
		$(foreach v,$(RUST_VARIANTS),$(v)=build/samples/rustext-$(v))
	@$(MAKE) --no-print-directory demo-bottlecap-compare
	@echo; echo "demo: the reports are $(DEMO_OUT)/compare.txt (the small sample) and $(DEMO_OUT)/bottlecap/compare.txt (the bottlecap-sized one); also compare.json, bench.txt, results-*.json"

# The same comparison for the bottlecap-sized sample alone (crates.io dependency
# set, ~8 MB stripped). Its first build takes about 7 minutes per cargo profile on
# 2 cores (prod and o3); later builds are cached in build/rust-bottlecap-target.
demo-bottlecap: deps build rust-bottlecap-samples rust-bottlecap-ordered demo-bottlecap-compare

demo-bottlecap-compare:
	@echo; echo "== initprof inspect: the bottlecap-sized sample (crates.io dependency set)"
	./$(BIN) inspect $(foreach v,$(BOTTLECAP_VARIANTS),build/samples/rustext-bottlecap-$(v))
	@echo; echo "== initprof compare: the bottlecap-sized sample, $(DEMO_RUNS) interleaved cold starts per build"
	./$(BIN) compare -n $(DEMO_RUNS) --name datadog-agent --runtime-init 15ms --out $(DEMO_OUT)/bottlecap --force \
		--checkpoint 'INIT \| phase=(\w+)' \
		$(foreach v,$(BOTTLECAP_VARIANTS),$(v)=build/samples/rustext-bottlecap-$(v))
	@echo; echo "demo-bottlecap: the report is $(DEMO_OUT)/bottlecap/compare.txt"

# The bottlecap-shaped Rust sample and its variants (offline, Debian's crates).
rust-samples:
	$(MAKE) -C testdata/rustext

# prod relinked with lld and an orderfile from `initprof orderfile` of the syms
# variant's cold starts (needs root and BPF, like the demo's compare).
rust-ordered: build rust-samples
	$(MAKE) -C testdata/rustext ordered

# The bottlecap-sized Rust sample (crates.io, pinned by its Cargo.lock; the first
# build fetches the crates into CARGO_HOME) and the variants `make demo` compares.
rust-bottlecap-samples:
	$(MAKE) -C testdata/rustext-bottlecap demo

# prod relinked with lld and an orderfile from `initprof orderfile` (needs root
# and BPF, like the demo's compare; about 5 minutes on 2 cores).
rust-bottlecap-ordered: build rust-bottlecap-samples
	$(MAKE) -C testdata/rustext-bottlecap ordered

clean:
	rm -rf bin build
