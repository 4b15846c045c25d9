package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile"
)

// telemetryExt is an extension written as the public Telemetry API samples
// are: it listens on sandbox:4323 and subscribes with the Logs API's
// destination fields (method, encoding), which Lambda accepts. Any refusal
// ends its init with an error, so a run's success is the subscribe's.
const telemetryExt = `package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension"
	req, _ := http.NewRequest("POST", api+"/register", bytes.NewBufferString(` + "`" + `{"events":["INVOKE","SHUTDOWN"]}` + "`" + `))
	req.Header.Set("Lambda-Extension-Name", filepath.Base(os.Args[0]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		fmt.Println("register failed", err, resp)
		os.Exit(1)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	ln, err := net.Listen("tcp", "sandbox:4323")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	body := ` + "`" + `{"schemaVersion":"2022-07-01","types":["platform","function"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":100},"destination":{"protocol":"HTTP","URI":"http://sandbox:4323","method":"POST","encoding":"JSON"}}` + "`" + `
	sub, _ := http.NewRequest("PUT", "http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2022-07-01/telemetry", bytes.NewBufferString(body))
	sub.Header.Set("Lambda-Extension-Identifier", id)
	resp, err = http.DefaultClient.Do(sub)
	if err != nil || resp.StatusCode != 200 {
		b := []byte{}
		if resp != nil {
			b, _ = io.ReadAll(resp.Body)
		}
		fmt.Printf("subscribe refused: %v %s\n", err, b)
		os.Exit(1)
	}
	for {
		next, _ := http.NewRequest("GET", api+"/event/next", nil)
		next.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(next)
		if err != nil {
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		if bytes.Contains(b, []byte("SHUTDOWN")) {
			return
		}
	}
}
`

// goRuntime is a provided.al2023 runtime client with only the standard
// library: /next, answer, repeat.
const goRuntime = `package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			os.Exit(1)
		}
		io.ReadAll(resp.Body)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewBufferString(` + "`" + `{"ok":true}` + "`" + `))
		if err != nil {
			os.Exit(1)
		}
		r.Body.Close()
	}
}
`

// buildGo builds a static program from one source file, with the standard
// library only (no module download).
func buildGo(t *testing.T, name, src string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.21\n"), 0o644)
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	return out
}

// zipOf writes a zip of files (archive path -> host file, mode kept) and
// text entries.
func zipOf(t *testing.T, path string, files map[string]string, text map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, mode os.FileMode, body []byte) {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
	}
	for name, host := range files {
		b, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(host)
		add(name, st.Mode().Perm(), b)
	}
	for name, body := range text {
		add(name, 0o644, []byte(body))
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireOCI skips a test whose subject is the OCI sandbox where runc is not.
func requireOCI(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := exec.LookPath("crun"); err != nil {
			t.Skip("SKIP: no runc or crun on PATH (apt-get install runc)")
		}
	}
}

// checkInits holds every run to a successful init in which each named
// process registered, subscribed (the platform answered 200) and reached
// /next.
func checkInits(t *testing.T, rep *profile.Report, runs int, procs ...string) {
	t.Helper()
	if len(rep.Runs) != runs {
		t.Fatalf("%d runs, want %d", len(rep.Runs), runs)
	}
	for _, r := range rep.Runs {
		if r.InitStatus != "success" {
			t.Errorf("run %d: init %q, want success", r.Index, r.InitStatus)
		}
		for _, name := range procs {
			p := findProc(r, name)
			if p == nil {
				t.Errorf("run %d: no process %s", r.Index, name)
				continue
			}
			// The runtime beside extensions is not probed (only its
			// syscalls are seen): no entry checkpoint for it.
			want := []string{profile.CkExec, profile.CkNext}
			if name != "runtime" {
				want = append(want, profile.CkEntry)
			}
			if name == "telemetry-ext" {
				want = append(want, profile.CkRegisterOK, profile.CkListenerBound, profile.CkSubscribeOK)
			}
			for _, ck := range want {
				if _, ok := p.Checkpoint(ck); !ok {
					t.Errorf("run %d: %s has no %s checkpoint (have %v)", r.Index, name, ck, p.Checkpoints)
				}
			}
		}
	}
}

// TestRunLayerZip is the done-when of issue 15 for layers and for the
// lenient subscribe: `initprof run layer.zip` cold-starts the extension the
// layer holds (in /opt/extensions, its lib/ under /opt), which listens on
// sandbox:4323 and subscribes with method and encoding in its destination,
// and every run initialises. A plain executable given beside the layer
// runs too.
func TestRunLayerZip(t *testing.T) {
	requireRunEnv(t)
	requireOCI(t)
	bin := testutil.BuildInitprof(t)
	ext := buildGo(t, "telemetry-ext", telemetryExt)
	dir := t.TempDir()
	layer := zipOf(t, filepath.Join(dir, "layer.zip"), map[string]string{"extensions/telemetry-ext": ext}, map[string]string{"lib/README": "a layer's other files"})
	t.Run("layer", func(t *testing.T) {
		rep, _, _ := runResults(t, bin, "-n", "3", "--cache", "warm", layer)
		checkInits(t, rep, 3, "telemetry-ext")
	})
	t.Run("process sandbox", func(t *testing.T) {
		rep, _, _ := runResults(t, bin, "-n", "1", "--cache", "warm", "--sandbox", "process", layer)
		checkInits(t, rep, 1, "telemetry-ext")
	})
	t.Run("layer and a plain executable", func(t *testing.T) {
		rep, _, _ := runResults(t, bin, "-n", "1", "--cache", "warm", layer, testutil.Sample(t, "goext"))
		checkInits(t, rep, 1, "telemetry-ext", "goext")
	})
	t.Run("function zip", func(t *testing.T) {
		rt := buildGo(t, "bootstrap", goRuntime)
		fn := zipOf(t, filepath.Join(dir, "code.zip"), map[string]string{"bootstrap": rt}, map[string]string{"handler.txt": "code"})
		rep, _, _ := runResults(t, bin, "-n", "1", "--cache", "warm", "--invokes", "2", "--function", fn, layer)
		checkInits(t, rep, 1, "telemetry-ext", "runtime")
	})
}

// TestRunImage: `initprof run --image` cold-starts a container image built
// in the test (docker save format): its ENTRYPOINT is the runtime and its
// /opt/extensions/telemetry-ext the extension.
func TestRunImage(t *testing.T) {
	requireRunEnv(t)
	requireOCI(t)
	bin := testutil.BuildInitprof(t)
	ext := buildGo(t, "telemetry-ext", telemetryExt)
	rt := buildGo(t, "bootstrap", goRuntime)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, host string }{{"opt/extensions/telemetry-ext", ext}, {"function/bootstrap", rt}} {
		b, _ := os.ReadFile(f.host)
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Entrypoint: []string{"/function/bootstrap"}, WorkingDir: "/function", Env: []string{"FROM_IMAGE=1"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	tag, _ := name.NewTag("initprof.test/fn:latest")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	rep, _, _ := runResults(t, bin, "-n", "1", "--cache", "warm", "--invokes", "2", "--image", p)
	checkInits(t, rep, 1, "telemetry-ext", "runtime")
}

// TestRunBadArchives: each archive Lambda would refuse is refused before
// any cold start (no root needed), with exit code 2 and the reason.
func TestRunBadArchives(t *testing.T) {
	bin := testutil.BuildInitprof(t)
	dir := t.TempDir()
	self, _ := os.Executable()
	slip := zipOf(t, filepath.Join(dir, "slip.zip"), map[string]string{"extensions/x": self, "../../evil": self}, nil)
	noExt := zipOf(t, filepath.Join(dir, "lib.zip"), nil, map[string]string{"lib/libx.so": "x"})
	noBoot := zipOf(t, filepath.Join(dir, "code.zip"), nil, map[string]string{"main.py": "x"})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"zip-slip", []string{slip}, "zip-slip"},
		{"no extensions", []string{noExt}, "no extensions/ in any layer"},
		{"function without bootstrap", []string{"--function", noBoot, noExt}, "no bootstrap"},
		{"function and runtime", []string{"--function", noBoot, "--runtime", self}, "--runtime with --function"},
		{"name and a layer", []string{"--name", "x", noExt}, "--name renames a plain executable"},
	}
	if arm := armBinary(t); arm != "" && runtime.GOARCH == "amd64" {
		armZip := zipOf(t, filepath.Join(dir, "arm.zip"), map[string]string{"extensions/goext": arm}, nil)
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"wrong architecture", []string{armZip}, "an aarch64 binary, but the target is x86_64"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runInitprof(t, bin, append([]string{"run", "--out", t.TempDir()}, c.args...)...)
			if code != exitBadInput {
				t.Errorf("exit %d, want %d; stderr %q", code, exitBadInput, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q lacks %q", stderr, c.want)
			}
		})
	}
}
