package outputs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/initprof/initprof/profile/flame"
)

// Diffs draws compare's differential flamegraphs: every build's sampling
// outputs (the stacks.folded that Write put in its directory) against the
// first build's, as diff-BASE-vs-NAME.svg in Dir. Red frames took a larger
// share of the samples than in the baseline, blue a smaller one.
type Diffs struct {
	Dir      string
	base     flame.Folded
	baseName string
}

// Add reads the stacks.folded in flameDir, build name's Write directory.
// The first build added is the baseline and gets no graph (path ""); every
// later one gets its differential flamegraph, and Add returns its path.
func (d *Diffs) Add(name, flameDir string) (path string, err error) {
	f, err := os.Open(filepath.Join(flameDir, "stacks.folded"))
	if err != nil {
		return "", err
	}
	folded, err := flame.ReadFolded(f)
	f.Close()
	if err != nil {
		return "", err
	}
	if d.base == nil {
		d.base, d.baseName = folded, name
		return "", nil
	}
	path = filepath.Join(d.Dir, "diff-"+d.baseName+"-vs-"+name+".svg")
	w, err := os.Create(path)
	if err != nil {
		return "", err
	}
	err = flame.WriteDiffSVG(w, d.base, folded, flame.Options{
		Title:    fmt.Sprintf("%s vs %s: share of CPU samples", name, d.baseName),
		Subtitle: "red: a larger share than in " + d.baseName + "; blue: a smaller one",
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return path, nil
}
