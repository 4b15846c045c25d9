package main

import (
	"github.com/initprof/initprof/container/lazyfs"
	"github.com/spf13/pflag"
)

// modelFlags defines the lambda storage model's parameters on a command line.
func modelFlags(fs *pflag.FlagSet, f *lazyfs.ModelFlags) {
	fs.StringVar(&f.Latency, "chunk-latency", "", "--storage lambda: each tier's fetch latency per 512 KiB chunk, e.g. worker=1.6ms,az=6.4ms,s3=48ms,host=0 (the default, fitted to lambda-perf's Init Durations); worker=0,az=0,s3=0 measures the FUSE layer alone")
	fs.StringVar(&f.FunctionMix, "chunk-mix", "", "--storage lambda: which tier serves the chunks of function code (/opt, /var/runtime, /var/task), e.g. worker=67%,az=32.9%,s3=0.1% (the default, from Brooker et al., USENIX ATC '23)")
	fs.StringVar(&f.BaseMix, "base-mix", "", "--storage lambda: the same for the base image's loader and libraries (/lib, /usr, /etc...), shared by every function on a worker; default host=100% (resident on the worker: no fetch cost)")
	fs.Uint64Var(&f.Seed, "storage-seed", 0, "--storage lambda: seed of the tier draw of the first cold start (each later one adds 1); default 1")
}
