package probes

// The sampler's BPF object is separate from the timing probes': sampling runs
// load only it, so they pay nothing for the timing probes, and the reverse.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 -cflags "-O2 -mcpu=v3 -Wall -Werror" sampler bpf/sample.bpf.c
