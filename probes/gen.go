package probes

// The BPF objects are committed, so building initprof needs no clang. `make
// generate` rebuilds them; CI checks that the committed copies are current, so
// the command pins everything that changes the output: clang-14 and its
// llvm-strip, and the vendored libbpf headers under bpf/include.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 -cflags "-O2 -mcpu=v3 -Wall -Werror" initprof bpf/initprof.bpf.c
