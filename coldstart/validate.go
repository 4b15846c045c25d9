package coldstart

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/layers"
	"github.com/initprof/initprof/container/lazyfs"
	"github.com/initprof/initprof/extension"
)

// Invocation is what initprof's run, compare and orderfile flags give
// beside a Config: the run count, the extension's --name, and the flags
// that a Config holds in another form (--init-cpu, where 0 is the invoke
// quota; --cache; --readahead in KiB; --checkpoint as text; the lambda
// storage model's flags).
type Invocation struct {
	Runs         int
	Name         string
	InitCPU      float64
	Cache        string // "cold" or "warm"
	ReadAheadKiB int
	Checkpoints  []string
	Model        lazyfs.ModelFlags
}

// Validate checks inv and c as the flags gave them, with args the
// command's extensions or layers: what c cannot see as given (the run
// count, --cache, and the zero values that c reads as defaults) first,
// then the Config inv makes of c (Invocation.Config, Config.Validate).
// Every error is of kind BadInput.
func (inv Invocation) Validate(c Config, args []string) error {
	bad := func(format string, args ...any) error { return kindErr(BadInput, fmt.Errorf(format, args...)) }
	if len(args) == 0 && c.Runtime == "sim" && c.Function == "" && c.Image == "" {
		return bad("no extension given; usage: initprof run [flags] EXTENSION|LAYER.zip..., or profile a function's own init with --runtime BOOTSTRAP, --function CODE.zip or --image IMAGE.tar and no extension")
	}
	if (c.Function != "" || c.Image != "") && c.Runtime != "sim" {
		return bad("--runtime with --function or --image: the function's bootstrap (or the image's ENTRYPOINT/CMD) is the runtime; give one of them")
	}
	if c.Function != "" && c.Image != "" {
		return bad("--function and --image: a function is either a zip or an image")
	}
	if inv.Runs < 1 {
		return bad("--runs must be at least 1")
	}
	if inv.InitCPU < 0 {
		return bad("--init-cpu %g: give 0 (the invoke quota) or up to 6 vCPUs (Lambda's most)", inv.InitCPU)
	}
	if inv.Cache != "cold" && inv.Cache != "warm" {
		return bad("--cache %q: use 'cold' or 'warm'", inv.Cache)
	}
	if inv.ReadAheadKiB < 4 || inv.ReadAheadKiB > 64<<10 {
		return bad("--readahead %d: give KiB between 4 and 65536 (128 is Linux's default)", inv.ReadAheadKiB)
	}
	if c.InitTimeout <= 0 {
		return bad("--init-timeout %s: must be positive (Lambda's is 10s)", c.InitTimeout)
	}
	if inv.Name != "" && len(args) > 1 {
		return bad("--name renames one extension; %d were given", len(args))
	}
	if inv.Name != "" && len(args) == 1 && layers.IsZip(args[0]) {
		return bad("--name renames a plain executable; a layer names its extensions by their files in extensions/")
	}
	if inv.Name != "" {
		if e := extension.CheckExtensionName(inv.Name); e != nil {
			return bad("--name: %s (Lambda names an extension after its file in /opt/extensions)", e.Message)
		}
	}
	cfg, err := inv.Config(c)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

// Config is c with inv's flags applied: the init CPU (0, the invoke quota,
// becomes negative), the cache, the readahead in bytes, the storage model
// and the checkpoints compiled. Errors are of kind BadInput.
func (inv Invocation) Config(c Config) (Config, error) {
	c.InitCPU, c.Warm, c.ReadAhead = inv.InitCPU, inv.Cache == "warm", inv.ReadAheadKiB<<10
	m, err := inv.Model.Model()
	if err != nil {
		return c, kindErr(BadInput, err)
	}
	c.StorageModel = &m
	if inv.InitCPU == 0 {
		c.InitCPU = -1 // the engine's "invoke quota throughout"
	}
	for _, s := range inv.Checkpoints {
		r, err := regexp.Compile(s)
		if err != nil {
			return c, kindErr(BadInput, fmt.Errorf("--checkpoint %q: %v", s, err))
		}
		c.Checkpoints = append(c.Checkpoints, r)
	}
	return c, nil
}

// VMStorage is the guest's storage (VMJob.Storage) that inv's flags and
// storage (Config.Storage, as given) describe.
func (inv Invocation) VMStorage(storage string) VMStorage {
	return VMStorage{Warm: inv.Cache == "warm", Storage: storage, ReadAheadKiB: inv.ReadAheadKiB,
		ChunkLatency: inv.Model.Latency, ChunkMix: inv.Model.FunctionMix, BaseMix: inv.Model.BaseMix, Seed: inv.Model.Seed}
}

// Validate checks c before anything is made, so that a bad option costs no
// sandbox and no probe; Open checks it too. Zero values stand for the
// defaults. The messages name the initprof flags that set each field, since
// that is where a user meets them. Every error is of kind BadInput.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error { return kindErr(BadInput, fmt.Errorf(format, args...)) }
	if c.MemoryMB != 0 && (c.MemoryMB < 128 || c.MemoryMB > 10240) {
		return bad("--memory %d: Lambda allows 128 to 10240 MB", c.MemoryMB)
	}
	if c.InitCPU > 6 {
		return bad("--init-cpu %g: give 0 (the invoke quota) or up to 6 vCPUs (Lambda's most)", c.InitCPU)
	}
	switch c.Sandbox {
	case "", "oci", "process":
	default:
		return bad("--sandbox %q: use 'oci' or 'process'", c.Sandbox)
	}
	switch c.Storage {
	case "", container.StorageLocal:
	case container.StorageLambda:
		if c.Warm {
			return bad("--storage lambda with --cache warm: a warm cache fetches nothing; use --cache cold (the default), or --storage local")
		}
	default:
		return bad("--storage %q: use 'lambda' or 'local'", c.Storage)
	}
	if c.ReadAhead != 0 && (c.ReadAhead < 4<<10 || c.ReadAhead > 64<<20) {
		return bad("--readahead %d: give KiB between 4 and 65536 (128 is Linux's default)", c.ReadAhead>>10)
	}
	if c.Invokes < 0 {
		return bad("--invokes %d: must be 0 or more", c.Invokes)
	}
	if c.InitTimeout < 0 {
		return bad("--init-timeout %s: must be positive (Lambda's is 10s)", c.InitTimeout)
	}
	if c.RuntimeInit < 0 || c.RuntimeInvoke < 0 {
		return bad("--runtime-init/--runtime-invoke: must not be negative")
	}
	if err := extension.ValidateEnv(c.Env); err != nil {
		return bad("--env: %v", err)
	}
	for _, u := range c.Uprobes {
		if strings.TrimSpace(u) == "" || strings.HasSuffix(u, ":") {
			return bad("--uprobe %q: want SYMBOL or FILE:SYMBOL", u)
		}
	}
	for _, f := range []struct{ flag, path string }{{"--function", c.Function}, {"--image", c.Image}} {
		if _, err := os.Stat(f.path); f.path != "" && err != nil {
			return bad("%s %s: %v", f.flag, f.path, unwrapPath(err))
		}
	}
	// A function package or an image brings its own runtime.
	if c.Runtime != "" && c.Runtime != "sim" && c.Function == "" && c.Image == "" {
		if st, err := os.Stat(c.Runtime); err != nil {
			return bad("--runtime %s: %v (give 'sim' or the path of a bootstrap executable)", c.Runtime, unwrapPath(err))
		} else if st.IsDir() || st.Mode()&0o111 == 0 {
			return bad("--runtime %s: not an executable file (give 'sim' or the path of a bootstrap executable)", c.Runtime)
		}
	}
	return nil
}

// unwrapPath drops the *os.PathError's operation and path, for a message
// that names the file already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
