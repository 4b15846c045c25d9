package extension

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Standalone holds the options of a platform that runs on its own: started
// by hand on the host, or as PID 1 in a sandbox (`initprof platform`). They
// are what a command line gives; Config checks them and makes the Config.
type Standalone struct {
	// ExtensionsDir is Lambda's /opt/extensions; "" for none.
	ExtensionsDir string
	// Runtime is "sim" (this binary, re-exec'd as the simulated runtime) or
	// the path of a bootstrap executable.
	Runtime string
	// RuntimeArgs are the bootstrap's arguments (an image's CMD after its
	// ENTRYPOINT).
	RuntimeArgs []string
	// RuntimeInit and RuntimeInvoke time the simulated runtime.
	RuntimeInit, RuntimeInvoke time.Duration
	Invokes                    int
	InitTimeout                time.Duration
	Addr                       string
	// Timeline is where the timeline goes as JSON lines: a path or fd:N.
	Timeline     string
	MemoryMB     int
	FunctionName string
	Env          []string
	// KeepLogs are regexps of output lines the timeline keeps.
	KeepLogs []string
}

// ErrBadOption marks the errors of Standalone.Config that are the caller's
// input to fix (the messages name initprof platform's flags).
var ErrBadOption = errors.New("bad option")

type badOption struct{ error }

func (badOption) Is(target error) bool { return target == ErrBadOption }
func (e badOption) Unwrap() error      { return e.error }

func badOpt(format string, args ...any) error { return badOption{fmt.Errorf(format, args...)} }

// Config checks o and makes the platform's Config. When o.Timeline is set
// it opens the sink: the caller closes the io.Closer it returns (nil
// otherwise) once the platform has run.
func (o Standalone) Config() (Config, io.Closer, error) {
	if o.Invokes < 0 {
		return Config{}, nil, badOpt("--invokes %d: must be 0 or more", o.Invokes)
	}
	if o.InitTimeout <= 0 {
		return Config{}, nil, badOpt("--init-timeout %s: must be positive", o.InitTimeout)
	}
	if o.RuntimeInit < 0 || o.RuntimeInvoke < 0 {
		return Config{}, nil, badOpt("--runtime-init/--runtime-invoke: must not be negative")
	}
	if o.MemoryMB < 128 || o.MemoryMB > 10240 {
		return Config{}, nil, badOpt("--memory %d: Lambda allows 128 to 10240 MB", o.MemoryMB)
	}
	if err := ValidateEnv(o.Env); err != nil {
		return Config{}, nil, badOpt("--env: %v", err)
	}
	if o.ExtensionsDir != "" {
		if st, err := os.Stat(o.ExtensionsDir); err != nil || !st.IsDir() {
			return Config{}, nil, badOpt("--extensions %s: not a directory", o.ExtensionsDir)
		}
	}
	var keep []*regexp.Regexp
	for _, k := range o.KeepLogs {
		re, err := regexp.Compile(k)
		if err != nil {
			return Config{}, nil, badOpt("--keep-log %q: %v", k, err)
		}
		keep = append(keep, re)
	}
	rt, err := o.runtime()
	if err != nil {
		return Config{}, nil, err
	}
	cfg := Config{
		ExtensionsDir: o.ExtensionsDir,
		Runtime:       rt,
		Function:      FunctionConfig{FunctionName: o.FunctionName, MemoryMB: o.MemoryMB},
		Env:           o.Env,
		Addr:          o.Addr,
		Invokes:       o.Invokes,
		InitTimeout:   o.InitTimeout,
		KeepLogs:      keep,
	}
	if o.Timeline == "" {
		return cfg, nil, nil
	}
	sink, err := OpenTimelineSink(o.Timeline)
	if err != nil {
		return Config{}, nil, badOpt("--timeline: %v", err)
	}
	cfg.Timeline = NewTimeline(sink)
	return cfg, sink, nil
}

// runtime is the runtime o asks for: the simulated one is the running
// binary, re-exec'd.
func (o Standalone) runtime() (RuntimeSpec, error) {
	if o.Runtime != "sim" {
		p, err := filepath.Abs(o.Runtime)
		if err != nil {
			return RuntimeSpec{}, badOpt("--runtime %s: %v", o.Runtime, err)
		}
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return RuntimeSpec{}, badOpt("--runtime %s: not an executable file (use 'sim' for the simulated runtime)", o.Runtime)
		}
		return RuntimeSpec{Path: p, Args: o.RuntimeArgs}, nil
	}
	exe, err := os.Executable() // reads /proc/self/exe
	if err != nil {
		// A sandbox without /proc: fall back to how we were started.
		if exe, err = exec.LookPath(os.Args[0]); err == nil {
			exe, err = filepath.Abs(exe)
		}
		if err != nil {
			return RuntimeSpec{}, fmt.Errorf("locating this binary for the sim runtime (no /proc/self/exe, and argv[0] %q): %w", os.Args[0], err)
		}
	}
	return SimRuntime(exe, o.RuntimeInit, o.RuntimeInvoke), nil
}

// InitError is nil when init succeeded, else how it failed, as
// "init STATUS (ERROR TYPE): ENDED BY".
func (r *Result) InitError() error {
	if r.InitStatus == "success" {
		return nil
	}
	msg := "init " + r.InitStatus
	if r.InitErrorType != "" {
		msg += " (" + r.InitErrorType + ")"
	}
	if r.EndedBy != "" {
		msg += ": " + r.EndedBy
	}
	return errors.New(msg)
}
