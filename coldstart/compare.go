package coldstart

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/initprof/initprof/container"
	"github.com/initprof/initprof/container/layers"
	"github.com/initprof/initprof/container/vm"
	"github.com/initprof/initprof/profile"
)

// Build is one build under comparison, compare's NAME=PATH argument.
type Build struct {
	Name, Path string
	exts       []container.Extension // CheckBuilds
}

// ParseBuilds reads NAME=PATH arguments: at least two, each name once.
// Errors are of kind BadInput.
func ParseBuilds(args []string) ([]Build, error) {
	if len(args) < 2 {
		return nil, kindErr(BadInput, fmt.Errorf("compare needs at least two builds, as NAME=PATH NAME=PATH"))
	}
	var bs []Build
	seen := map[string]bool{}
	for _, a := range args {
		name, path, ok := strings.Cut(a, "=")
		if !ok || name == "" || path == "" {
			return nil, kindErr(BadInput, fmt.Errorf("%q: want NAME=PATH, e.g. prod=./target/release/ext", a))
		}
		if strings.ContainsAny(name, " /\t") {
			return nil, kindErr(BadInput, fmt.Errorf("build name %q: use letters, digits, '-', '_' or '.'", name))
		}
		if seen[name] {
			return nil, kindErr(BadInput, fmt.Errorf("build name %q is used twice", name))
		}
		seen[name] = true
		bs = append(bs, Build{Name: name, Path: path})
	}
	return bs, nil
}

// ExtensionName is the name every build runs under in /opt/extensions, so
// that only the binary differs: name, or else the first build's file name.
func ExtensionName(bs []Build, name string) string {
	if name == "" {
		return filepath.Base(bs[0].Path)
	}
	return name
}

// CheckBuilds checks every build's binary as an extension named name
// (Extensions), and the layers and function among them as Lambda checks
// them (CheckPackages), before any cold start: a bad path is the user's typo, not a
// build that "failed to start".
func CheckBuilds(bs []Build, name, rootfs, function string, runtimeGiven bool) error {
	for i, b := range bs {
		exts, err := Extensions([]string{b.Path}, name, rootfs)
		if err == nil {
			err = CheckPackages(exts, function, runtimeGiven)
		}
		if err != nil {
			return err
		}
		bs[i].exts = exts
	}
	return nil
}

// Comparison is a comparison of builds (Engine.NewComparison) and, after
// Run, what it measured.
type Comparison struct {
	// Builds are the builds' runs and load facts, or why a build was not
	// measured (Err), in the order given.
	Builds []profile.BuildRuns
	// Series are the builds' series; nil for a build that could not be
	// measured. Close closes them.
	Series []*Series
	// Reports are the builds' reports (nil for a build without a run).
	Reports []*profile.Report
	// Comparison compares the builds against the first.
	Comparison *profile.Comparison
	// Interrupted is set when ctx ended the rounds early.
	Interrupted *profile.Interrupted

	builds []Build
	e      *Engine
}

// NewComparison prepares a series of every build (checked by
// CheckBuilds). A build that cannot be measured (its sandbox will not
// start) gets its reason in Builds[j].Err and a progress line, and the
// others are compared; missing privileges are an error.
func (e *Engine) NewComparison(bs []Build) (*Comparison, error) {
	c := &Comparison{builds: bs, e: e, Builds: make([]profile.BuildRuns, len(bs)), Series: make([]*Series, len(bs)), Reports: make([]*profile.Report, len(bs))}
	for i, b := range bs {
		c.Builds[i] = profile.BuildRuns{Build: b.Name, Facts: profile.LoadFacts(b.Path)}
		if layers.IsZip(b.Path) { // a layer: its extensions are inside
			c.Builds[i].Facts = []profile.Fact{{Name: "layer", Value: filepath.Base(b.Path)}}
		}
		s, err := e.NewSeries(b.Name, b.exts)
		if err != nil {
			if KindOf(err) == Privileges {
				c.Close()
				return nil, err
			}
			c.Builds[i].Err = err.Error()
			e.progressf("%s: cannot be measured: %v", b.Name, err)
			continue
		}
		c.Series[i] = s
	}
	return c, nil
}

// Run makes runs cold starts of every build, interleaved in rounds
// (Interleave: seed 0 picks the order's seed), and compares them
// (Comparison, Reports). A build whose run errs or whose first init fails
// is dropped from the comparison with its reason in Builds[j].Err and a
// progress line. onRun is called after each run that was kept. When ctx
// ends the rounds early, Interrupted says how far they got.
func (c *Comparison) Run(ctx context.Context, runs int, seed uint64, onRun func(profile.Run)) {
	bs, e := c.builds, c.e
	rounds := Interleave(ctx, c.Series, runs, seed, func(j int, r profile.Run, err error) {
		switch {
		case err != nil:
			c.Builds[j].Err = err.Error()
			e.progressf("%s: dropped from the comparison: %v", bs[j].Name, err)
			return
		case r.InitStatus != "success" && r.Index == 0:
			c.Builds[j].Err = fmt.Sprintf("init failed in the sandbox (status %s); see results-%s.json", r.InitStatus, bs[j].Name)
			e.progressf("%s: %s", bs[j].Name, c.Builds[j].Err)
		}
		if onRun != nil {
			onRun(r)
		}
	})
	if ctx.Err() != nil {
		most := 0
		for _, s := range c.Series {
			if s != nil {
				most = max(most, len(s.Runs()))
			}
		}
		c.Interrupted = &profile.Interrupted{Runs: most, Planned: runs}
	}
	for j, s := range c.Series {
		if s != nil && len(s.Runs()) > 0 {
			c.Builds[j].Runs = s.Runs()
			c.Reports[j] = s.Report()
			if c.Interrupted != nil {
				c.Reports[j].Interrupted = &profile.Interrupted{Runs: len(s.Runs()), Planned: runs}
			}
		}
	}
	cmp := profile.Compare(c.Builds)
	cmp.Seed = rounds.Seed
	cmp.Notes = append(cmp.Notes, fmt.Sprintf("run order: each round ran the builds in a fresh random order (--seed %d repeats it)", rounds.Seed))
	if e.cfg.Emulated {
		cmp.Notes = append([]string{"EMULATED: " + vm.EmulatedNote + " (arm64 under qemu TCG); shifts between builds are real arm64 code paths, their sizes are not Graviton's"}, cmp.Notes...)
	}
	if c.Interrupted != nil {
		cmp.Interrupted = c.Interrupted
		cmp.Notes = append(cmp.Notes, "interrupted: the comparison covers the runs made before the interrupt")
	}
	c.Comparison = cmp
}

// Close closes the builds' series.
func (c *Comparison) Close() {
	for _, s := range c.Series {
		if s != nil {
			s.Close()
		}
	}
}
