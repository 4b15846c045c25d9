package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/extension"
)

func init() {
	register(&command{
		name:    "platform",
		summary: "run the Lambda platform emulator on the host and summarise init",
		usage:   "--extensions DIR [flags]",
		long: `platform runs a Lambda execution environment with plain processes on this
machine: it serves the Extensions, Telemetry, Logs and Runtime APIs, emits
platform.initStart, execs every file in --extensions (alphabetical, in parallel),
starts the runtime once they have all registered, and ends init when the runtime
and every extension have called /next, exactly as Lambda does. Then it runs
--invokes invocations and a SHUTDOWN, and prints when each process registered,
subscribed and called /next, the runtime's init time, the Init Duration
(initStart → the last /next, as platform.initReport reports it) and which
process ended init.

--runtime sim is a simulated runtime (this binary, re-exec'd) that spends
--runtime-init before its first /next and --runtime-invoke per invoke: 15ms
models provided.al2023, 180ms python or node with imports. Any other value is
the path of a real bootstrap executable.

No container and no probes: use 'initprof run' for that. --timeline writes every
API request, process spawn/exit, state change, telemetry delivery and log line
with its CLOCK_MONOTONIC time as JSON lines (a path, or fd:N for the host's
pipe). The summary flags a telemetry subscribe that raced with the end of init
(sent concurrently with the first /next, or refused with 403 because it arrived
after init ended). Exit status 4 means init failed (timeout, error or failure);
the summary is printed either way.

Examples:
  mkdir exts && cp build/samples/goext build/samples/cext exts/
  initprof platform --extensions exts --runtime sim --runtime-init 180ms
  initprof platform --extensions ./exts --runtime ./bootstrap --invokes 3 --timeline t.jsonl
  initprof platform --extensions ./exts --init-timeout 1s --env INITPROF_SAMPLE_H18=1`,
		setup: func(fs *pflag.FlagSet) func([]string) error {
			o := platformOpts{}
			fs.StringVar(&o.ExtensionsDir, "extensions", "", "directory of external extensions (Lambda's /opt/extensions)")
			fs.StringVar(&o.Runtime, "runtime", "sim", "runtime: 'sim' (simulated) or the path of a bootstrap executable")
			fs.StringArrayVar(&o.RuntimeArgs, "runtime-arg", nil, "an argument for the runtime executable (an image's CMD after its ENTRYPOINT); repeatable")
			fs.DurationVar(&o.RuntimeInit, "runtime-init", 0, "sim runtime: time before its first /next")
			fs.DurationVar(&o.RuntimeInvoke, "runtime-invoke", 0, "sim runtime: time to answer each invoke")
			fs.IntVar(&o.Invokes, "invokes", 1, "invocations after init")
			fs.DurationVar(&o.InitTimeout, "init-timeout", 10*time.Second, "init limit; past it init ends with status timeout")
			fs.StringVar(&o.Addr, "addr", "127.0.0.1:9001", "API listen address (AWS_LAMBDA_RUNTIME_API); port 0 picks a free one")
			fs.StringVar(&o.Timeline, "timeline", "", "write the timeline as JSON lines to PATH or fd:N")
			fs.IntVar(&o.MemoryMB, "memory", 1024, "function memory in MB (128-10240), reported to processes and in reports")
			fs.StringVar(&o.FunctionName, "function-name", "initprof-function", "function name (AWS_LAMBDA_FUNCTION_NAME)")
			fs.StringArrayVar(&o.Env, "env", nil, "customer environment variable K=V for the runtime and extensions; repeatable")
			fs.IntVar(&o.waitFD, "wait-fd", -1, "block until this fd is readable or closed before initStart (lets probes attach first)")
			fs.StringArrayVar(&o.KeepLogs, "keep-log", nil, "keep every output line matching REGEX in the timeline (others: the first and last lines per stream and phase); repeatable")
			fs.StringVar(&o.initEndNotify, "init-end-notify", "", "unix socket to tell when INIT ends, waiting for its answer (the sandbox switches to the invoke CPU quota there)")
			fs.MarkHidden("init-end-notify")
			fs.BoolVar(&o.output, "output", false, "echo every process's output lines to stderr, prefixed with its name")
			return func(args []string) error { return runPlatform(o, args) }
		},
	})
}

// platformOpts are the platform's options (extension.Standalone) and the
// flags that tie it to the sandbox initprof run drives.
type platformOpts struct {
	extension.Standalone
	initEndNotify string
	waitFD        int
	output        bool
}

func runPlatform(o platformOpts, args []string) error {
	if o.waitFD < 0 {
		// Not the platform of a sandbox that initprof run drives (that
		// passes --wait-fd, or is PID 1): a user's own platform, which
		// may follow a SIGKILLed run.
		cleanupStale("")
	}
	if len(args) > 0 {
		return badInput("unexpected argument %q: platform takes only flags (extensions come from --extensions DIR)", args[0])
	}
	cfg, sink, err := o.Config()
	if errors.Is(err, extension.ErrBadOption) {
		return badInput("%v", err)
	} else if err != nil {
		return err
	}
	if sink != nil {
		defer sink.Close()
	}
	if o.initEndNotify != "" {
		cfg.OnInitEnd = func() error { return container.NotifyInitEnd(o.initEndNotify) }
	}
	if o.output {
		cfg.Output = os.Stderr
	}
	p, err := extension.New(cfg)
	if err != nil {
		return badInput("%v", err)
	}
	// As PID 1 in the sandbox, SIGTERM/SIGINT come from the container
	// runtime: stop, kill the children, exit.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if o.waitFD >= 0 {
		if err := extension.WaitFD(ctx, o.waitFD); err != nil {
			p.Close()
			if errors.Is(err, extension.ErrBadFD) {
				return badInput("%v", err)
			}
			return withCode(exitInterrupted, err)
		}
	}
	res, err := extension.RunStandalone(ctx, p, cfg, os.Stdout, func(m string) { fmt.Fprintf(os.Stderr, "initprof platform: %s\n", m) })
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return withCode(exitInterrupted, err)
		}
		return err
	}
	if err := res.InitError(); err != nil {
		return withCode(exitInitFailed, err)
	}
	return nil
}
