package main

import (
	"fmt"
	"os"

	"github.com/initprof/initprof/container/lazyfs"
	"github.com/spf13/pflag"
)

// `initprof lazyfs` is the lambda storage model's FUSE server, in its own
// process; the container package spawns it (lazyfs.Start) and drives it
// over stdin/stdout. All the logic is in container/lazyfs.
func init() {
	register(&command{
		name:    "lazyfs",
		hidden:  true,
		summary: "serve a directory through Lambda's chunked lazy storage (internal)",
		usage:   "--backing DIR --mount DIR [flags]",
		long: `Mounts DIR (--backing) at --mount through FUSE, charging the first read of
each 512 KiB chunk of each file a fetch latency drawn from the storage model,
and answers "reset [SEED]", "stats" and "quit" lines on stdin. EOF on stdin
(the parent died), SIGTERM or Ctrl-C unmount it. initprof run starts it
itself for --storage lambda; run it by hand only to debug the model.`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			var o lazyfs.ServeOptions
			var modelJSON string
			var mf lazyfs.ModelFlags
			fs.StringVar(&o.Backing, "backing", "", "directory to serve")
			fs.StringVar(&o.Mount, "mount", "", "mount point (an existing directory)")
			fs.StringVar(&modelJSON, "model-json", "", "the whole storage model as JSON (what initprof passes; overrides the model flags)")
			modelFlags(fs, &mf)
			fs.IntVar(&o.ReadAhead, "readahead", lazyfs.DefaultReadAhead, "the mount's readahead in bytes")
			fs.IntVar(&o.Owner, "owner", os.Getppid(), "pid of the initprof that owns the mount (stale cleanup)")
			fs.BoolVar(&o.Debug, "debug", false, "log every FUSE request to stderr (slow)")
			return func(args []string) error {
				if o.Backing == "" || o.Mount == "" {
					return badInput("--backing and --mount are required")
				}
				m, err := mf.ServeModel(modelJSON)
				if err != nil {
					return badInput("%v", err)
				}
				o.Model = m
				if err := lazyfs.Serve(o, os.Stdin, os.Stdout); err != nil {
					return fmt.Errorf("%v", err)
				}
				return nil
			}
		},
	})
}
