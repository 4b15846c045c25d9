// Package layers lays out what Lambda deploys the way Lambda lays it out:
// layer zips under /opt (in the function's layer order, a later layer's file
// winning over an earlier one's, file modes kept), a function's zip at
// /var/task, and a container image as the whole root filesystem.
//
// Its other job is to refuse, before anything runs, what Lambda refuses or
// what could not start there, with an error that names the archive, the
// entry and the fix: entries that climb out of their directory (zip-slip),
// symlinks that leave it, a layer with nothing to run, an executable built for
// the other architecture, and archives over Lambda's size quotas. A team that
// gets "exec format error" from inside a sandbox blames its own build; a team
// told "extensions/foo in layer.zip is an aarch64 binary, the target is x86_64"
// fixes its zip.
//
// The package knows nothing of sandboxes: container builds the rootfs with
// it, and the engine reads the Manifest to learn which extensions a layer
// brought.
package layers

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/initprof/initprof/elfinfo"
)

// Where Lambda puts each kind of archive.
const (
	OptDir  = "/opt"      // layers
	TaskDir = "/var/task" // the function's code
	// ExtensionsDir is what Lambda starts as external extensions: every
	// file directly in it.
	ExtensionsDir = "/opt/extensions"
	// Bootstrap is the runtime of a provided.al2023 function: its zip's
	// top-level bootstrap, run from /var/task.
	Bootstrap = TaskDir + "/bootstrap"
)

// Limits are Lambda's deployment quotas (the "Lambda quotas" page of the
// Lambda developer guide).
type Limits struct {
	// Unzipped bounds a function's zip and all its layers, unzipped: 250 MB.
	Unzipped int64
	// Layers is the most layers one function can have: 5.
	Layers int
	// Image bounds a container image, uncompressed, all layers: 10 GB.
	Image int64
	// Zipped is the largest zip a direct upload takes: 50 MB. Lambda takes a
	// larger one through S3 (the unzipped limit still holds), so going over
	// it is a note in Manifest.Notes, not an error.
	Zipped int64
}

// LambdaLimits are the quotas as Lambda publishes them. Lambda's "MB" and
// "GB" here are binary (250 MB is 262,144,000 bytes).
func LambdaLimits() Limits {
	return Limits{Unzipped: 250 << 20, Layers: 5, Image: 10 << 30, Zipped: 50 << 20}
}

// Options say what the archives are checked against.
type Options struct {
	// Arch is the target's architecture in elfinfo's naming ("x86_64",
	// "aarch64"); "" is this machine's (the sandbox runs natively).
	Arch string
	// Limits are the quotas; the zero value is LambdaLimits. Tests shrink
	// them so an archive over a limit stays small.
	Limits *Limits
}

func (o Options) arch() string {
	if o.Arch != "" {
		return o.Arch
	}
	return elfinfo.HostArch()
}

func (o Options) limits() Limits {
	if o.Limits != nil {
		return *o.Limits
	}
	return LambdaLimits()
}

// Deployment is a zip-packaged function as Lambda sees it: its layers in
// order, and its code.
type Deployment struct {
	// Layers are layer zips, in the function's order: a later layer's file
	// replaces an earlier one's at the same path.
	Layers []string
	// Function is the function's deployment zip ("" for none): unpacked at
	// /var/task, its top-level bootstrap is the runtime.
	Function string
	// Others says something else runs besides what the archives bring (an
	// extension or a runtime given as a plain file): a layer without
	// extensions is then a library layer, not a mistake.
	Others bool
}

// Manifest is what a deployment holds, found by Check from the archives'
// directories alone.
type Manifest struct {
	// Extensions are the names in /opt/extensions once every layer is laid
	// out, sorted (the order Lambda starts them in), each with the layer
	// that brought it.
	Extensions []Extension
	// Bootstrap is the function's runtime, Bootstrap ("" without a function).
	Bootstrap string
	// Unzipped is the size of the function and every layer unzipped.
	Unzipped int64
	// Notes are what Lambda would take but a user should know (a zip over
	// the direct-upload limit).
	Notes []string
}

// Extension is one file of /opt/extensions and the layer it came from.
type Extension struct {
	Name  string
	Layer string
}

// Error is a problem with an archive the user gave: what to change is in
// its text. Errors that are not *Error are this machine's (a full disk).
type Error struct {
	Archive string // the archive's path
	Entry   string // the member at fault, "" for the archive as a whole
	Msg     string
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return e.Archive + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", e.Archive, e.Entry, e.Msg)
}

// IsBadInput reports whether err is about an archive the user gave.
func IsBadInput(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func bad(archive, entry, format string, args ...any) error {
	return &Error{Archive: archive, Entry: entry, Msg: fmt.Sprintf(format, args...)}
}

// IsZip reports whether the file at p is a zip archive (its first bytes are
// a zip header), so a command line can mix plain executables and layers.
func IsZip(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	// A local file header, or the end record of an empty zip.
	return string(head) == "PK\x03\x04" || string(head) == "PK\x05\x06"
}

// member is one zip entry as it will be laid out.
type member struct {
	archive string // the zip's path
	f       *zip.File
	name    string // cleaned, relative to mount: "extensions/foo"
	mount   string // OptDir or TaskDir
	target  string // a symlink's target
}

func (m *member) inside() string { return path.Join(m.mount, m.name) }

// open reads every zip of d and returns its members, later layers after
// earlier ones, the function last, after the checks that need one entry at a
// time. The caller closes the readers.
func (d Deployment) open(lim Limits) (members []*member, readers []*zip.ReadCloser, notes []string, err error) {
	defer func() {
		if err != nil {
			for _, r := range readers {
				r.Close()
			}
			readers = nil
		}
	}()
	if lim.Layers > 0 && len(d.Layers) > lim.Layers {
		return nil, nil, nil, bad(d.Layers[lim.Layers], "", "%d layers given: Lambda attaches at most %d layers to a function (merge layers, or put the extension in the function's image)", len(d.Layers), lim.Layers)
	}
	type archive struct{ path, mount, what string }
	var archives []archive
	for _, l := range d.Layers {
		archives = append(archives, archive{l, OptDir, "layer"})
	}
	if d.Function != "" {
		archives = append(archives, archive{d.Function, TaskDir, "function zip"})
	}
	for _, a := range archives {
		st, err := os.Stat(a.path)
		if err != nil {
			return nil, nil, nil, bad(a.path, "", "%v", unwrapPath(err))
		}
		if st.IsDir() {
			return nil, nil, nil, bad(a.path, "", "is a directory: give the %s as a zip (cd DIR && zip -r --symlinks ../%s.zip .)", a.what, filepath.Base(a.path))
		}
		if lim.Zipped > 0 && st.Size() > lim.Zipped {
			notes = append(notes, fmt.Sprintf("%s is %s zipped: over Lambda's %s limit for a direct upload; Lambda takes it through S3, where only the %s unzipped limit holds", a.path, mb(st.Size()), mb(lim.Zipped), mb(lim.Unzipped)))
		}
		r, err := zip.OpenReader(a.path)
		if err != nil {
			return nil, nil, nil, bad(a.path, "", "not a readable zip archive (%v): a %s is a zip of the files Lambda unpacks under %s", err, a.what, a.mount)
		}
		readers = append(readers, r)
		for _, f := range r.File {
			m, err := newMember(a.path, a.mount, f)
			if err != nil {
				return nil, nil, nil, err
			}
			if m != nil {
				members = append(members, m)
			}
		}
	}
	return members, readers, notes, nil
}

// newMember checks one entry: where it lands, and, for a symlink, where it
// points. nil for the archive's root directory entry ("./").
func newMember(archive, mount string, f *zip.File) (*member, error) {
	raw := f.Name
	if strings.HasPrefix(raw, "/") {
		return nil, bad(archive, raw, "an absolute path: unpacked as named it would write outside %s (zip-slip); rebuild the zip from inside the directory (cd DIR && zip -r ../x.zip .)", mount)
	}
	name := path.Clean(raw)
	if name == ".." || strings.HasPrefix(name, "../") {
		return nil, bad(archive, raw, "climbs out of %s with '..' (zip-slip): Lambda's unzip refuses it, and unpacked it would overwrite files outside the layer; rebuild the zip from inside the directory (cd DIR && zip -r ../x.zip .)", mount)
	}
	if name == "." {
		return nil, nil
	}
	m := &member{archive: archive, f: f, name: name, mount: mount}
	if f.Mode()&os.ModeSymlink != 0 {
		t, err := readSmall(f, 4096)
		if err != nil {
			return nil, bad(archive, raw, "symlink: %v", err)
		}
		m.target = string(t)
		dest := m.target
		if !path.IsAbs(dest) {
			dest = path.Join(path.Dir(m.inside()), dest)
		}
		dest = path.Clean(dest)
		if dest != mount && !strings.HasPrefix(dest, mount+"/") {
			return nil, bad(archive, raw, "a symlink to %s, which is outside %s where Lambda unpacks this zip: a layer's links must stay inside it (copy the file into the zip, or link to a path under %s)", m.target, mount, mount)
		}
	}
	return m, nil
}

// final is the laid-out view: the last member at each path wins.
func final(members []*member) map[string]*member {
	view := map[string]*member{}
	for _, m := range members {
		view[m.inside()] = m
	}
	return view
}

// Check reads the archives' directories (and the first bytes of each
// executable) and refuses what Lambda would refuse or could not run, without
// unpacking anything.
func Check(d Deployment, opt Options) (*Manifest, error) {
	members, readers, notes, err := d.open(opt.limits())
	if err != nil {
		return nil, err
	}
	defer closeAll(readers)
	return d.check(members, notes, opt)
}

func (d Deployment) check(members []*member, notes []string, opt Options) (*Manifest, error) {
	lim := opt.limits()
	man := &Manifest{Notes: notes}
	for _, m := range members {
		man.Unzipped += int64(m.f.UncompressedSize64)
	}
	if lim.Unzipped > 0 && man.Unzipped > lim.Unzipped {
		what := "the layers"
		if d.Function != "" {
			what = "the function and its layers"
		}
		arch := d.Function
		if arch == "" {
			arch = d.Layers[len(d.Layers)-1]
		}
		return nil, bad(arch, "", "%s unzip to %s: over Lambda's %s limit for a function and all its layers unzipped (%s); trim them, or ship a container image (up to %s)", what, mb(man.Unzipped), mb(lim.Unzipped), sizes(members), gb(lim.Image))
	}
	view := final(members)
	for inside, m := range view {
		if path.Dir(inside) != ExtensionsDir || m.f.Mode().IsDir() {
			continue
		}
		if err := checkExecutable(m, view, opt, "Lambda starts every file in /opt/extensions as an extension"); err != nil {
			return nil, err
		}
		man.Extensions = append(man.Extensions, Extension{Name: path.Base(inside), Layer: m.archive})
	}
	sort.Slice(man.Extensions, func(i, j int) bool { return man.Extensions[i].Name < man.Extensions[j].Name })
	if d.Function != "" {
		m, ok := view[Bootstrap]
		if !ok || m.f.Mode().IsDir() {
			return nil, bad(d.Function, "", "no bootstrap at the zip's top level: --function runs /var/task/bootstrap as the runtime, as provided.al2023 does (zip the executable as 'bootstrap', at the top: %s)", topLevel(members, TaskDir))
		}
		if err := checkExecutable(m, view, opt, "provided.al2023 runs it as the runtime"); err != nil {
			return nil, err
		}
		man.Bootstrap = Bootstrap
	}
	if len(man.Extensions) == 0 && d.Function == "" && !d.Others && len(d.Layers) > 0 {
		return nil, bad(d.Layers[0], "", "no extensions/ in any layer, and no function or plain extension given: nothing to run. Lambda starts only the files in /opt/extensions; a layer zip has extensions/NAME at its top (%s)", topLevel(members, OptDir))
	}
	return man, nil
}

// checkExecutable refuses a file Lambda would fail to exec: no execute bit
// (a zip made without Unix modes), or an ELF for the other architecture.
func checkExecutable(m *member, view map[string]*member, opt Options, why string) error {
	for hops := 0; m.target != ""; hops++ {
		// A link inside the layer (extensions/foo -> ../bin/foo): check
		// what it names, when the archives hold it.
		dest := m.target
		if !path.IsAbs(dest) {
			dest = path.Join(path.Dir(m.inside()), dest)
		}
		n, ok := view[path.Clean(dest)]
		if !ok || hops > 40 {
			return nil // the sandbox resolves it; a dangling link fails there
		}
		m = n
	}
	mode := m.f.Mode()
	if !mode.IsRegular() {
		return bad(m.archive, m.f.Name, "not a regular file (%s); %s", mode.Type(), why)
	}
	if mode&0o111 == 0 {
		return bad(m.archive, m.f.Name, "not executable (mode %04o): %s, so it must be executable; chmod +x it and rebuild the zip with a tool that keeps Unix modes (Info-ZIP zip does)", mode.Perm(), why)
	}
	head, err := readSmall(m.f, 64)
	if err != nil {
		return bad(m.archive, m.f.Name, "%v", err)
	}
	if strings.HasPrefix(string(head), "#!") {
		return nil // a script: its interpreter is checked when the sandbox is built
	}
	arch, ok := elfinfo.HeaderArch(head)
	if !ok {
		return bad(m.archive, m.f.Name, "neither an ELF executable nor a #! script: %s", why)
	}
	if want := opt.arch(); want != "" && arch != want {
		return bad(m.archive, m.f.Name, "an %s binary, but the target is %s: rebuild it for %s (or, on an x86 host, profile an arm64 build with --arch arm64)", arch, want, want)
	}
	return nil
}

// Unpack checks d as Check does, then lays it out under root (the sandbox's
// root filesystem): layers in order under root/opt, the function under
// root/var/task. It returns the manifest and the host paths of the regular
// files written (a cold run evicts them).
func Unpack(d Deployment, root string, opt Options) (*Manifest, []string, error) {
	members, readers, notes, err := d.open(opt.limits())
	if err != nil {
		return nil, nil, err
	}
	defer closeAll(readers)
	man, err := d.check(members, notes, opt)
	if err != nil {
		return nil, nil, err
	}
	w := newWriter(root)
	for _, m := range members {
		if err := w.zipMember(m); err != nil {
			return nil, nil, err
		}
	}
	if err := w.finish(); err != nil {
		return nil, nil, err
	}
	return man, w.regular(), nil
}

// zipMember writes one entry; a later one at the same path replaces it.
func (w *writer) zipMember(m *member) error {
	rel := strings.TrimPrefix(m.inside(), "/")
	mode := m.f.Mode()
	switch {
	case mode.IsDir():
		return w.dir(rel, mode.Perm())
	case mode&os.ModeSymlink != 0:
		return w.symlink(rel, m.target)
	case mode.IsRegular():
		rc, err := m.f.Open()
		if err != nil {
			return bad(m.archive, m.f.Name, "%v", err)
		}
		defer rc.Close()
		if err := w.file(rel, rc, mode.Perm()); err != nil {
			if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF) {
				return bad(m.archive, m.f.Name, "corrupt entry: %v", err)
			}
			return err
		}
		return nil
	}
	return nil // devices, pipes: Lambda's unzip makes none either
}

func readSmall(f *zip.File, n int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, n))
}

func closeAll(rs []*zip.ReadCloser) {
	for _, r := range rs {
		r.Close()
	}
}

// topLevel lists what an archive holds at its top, for errors about a zip
// built one directory too high (layer/extensions/foo instead of extensions/foo).
func topLevel(members []*member, mount string) string {
	seen := map[string]bool{}
	var names []string
	for _, m := range members {
		if m.mount != mount {
			continue
		}
		top, _, _ := strings.Cut(m.name, "/")
		if !seen[top] {
			seen[top] = true
			names = append(names, top)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "the zip is empty"
	}
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return "its top level holds " + strings.Join(names, ", ")
}

// sizes is the unzipped size of each archive, for the over-the-limit error.
func sizes(members []*member) string {
	var order []string
	by := map[string]int64{}
	for _, m := range members {
		if _, ok := by[m.archive]; !ok {
			order = append(order, m.archive)
		}
		by[m.archive] += int64(m.f.UncompressedSize64)
	}
	var parts []string
	for _, a := range order {
		parts = append(parts, fmt.Sprintf("%s %s", filepath.Base(a), mb(by[a])))
	}
	return strings.Join(parts, ", ")
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
func gb(n int64) string { return fmt.Sprintf("%.1f GB", float64(n)/(1<<30)) }

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
