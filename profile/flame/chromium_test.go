package flame_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/initprof/initprof/internal/testutil"
	"github.com/initprof/initprof/profile/flame"
)

// TestChromiumRenders opens a real flamegraph in headless Chromium (Debian's
// chromium package) and checks the screenshot is not blank: the SVG, its
// style and its script load in a real browser, not just in an XML parser.
func TestChromiumRenders(t *testing.T) {
	browser := testutil.RequireTool(t, "chromium")
	rec := record(t)
	var b bytes.Buffer
	if err := flame.WriteSVG(&b, flame.FromStacks(rec.Stacks, nil), flame.Options{Title: "spin in chromium"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	svg := filepath.Join(dir, "flame.svg")
	shot := filepath.Join(dir, "out.png")
	if err := os.WriteFile(svg, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1200,800",
		"file://"+svg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	colours := distinct(img)
	t.Logf("screenshot %v, %d distinct colours", img.Bounds().Size(), colours)
	// A blank page has 1 colour, a page of text a handful of greys; frames
	// coloured by name give dozens.
	if colours < 20 {
		t.Errorf("screenshot has %d distinct colours: the flamegraph did not render", colours)
	}
	writeArtifact(t, "flame-chromium.png", mustRead(t, shot))
}

func distinct(img image.Image) int {
	seen := map[uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			seen[(cr>>8)<<16|(cg>>8)<<8|cb>>8] = true
		}
	}
	return len(seen)
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
