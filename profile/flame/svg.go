package flame

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"math"
	"sort"
	"strings"
)

// Options shape an SVG flamegraph.
type Options struct {
	Title    string // e.g. "cext — constructors"
	Subtitle string // e.g. "run 3, 412 samples at 4 kHz"
	Width    int    // pixels; 0 means 1200
	// Unit names what a weight counts ("samples" when empty).
	Unit string
	// MinWidth hides frames narrower than this many pixels (0.1 when 0): they
	// would be invisible and only bloat the file.
	MinWidth float64
}

const (
	frameH   = 16
	fontSize = 12
	padTop   = 54
	padSide  = 10
	padBot   = 30
)

type node struct {
	name     string
	value    int64 // cumulative weight (current profile)
	base     int64 // cumulative weight in the base profile (diff only)
	children map[string]*node
	order    []*node
}

func (n *node) child(name string) *node {
	if c, ok := n.children[name]; ok {
		return c
	}
	if n.children == nil {
		n.children = map[string]*node{}
	}
	c := &node{name: name}
	n.children[name] = c
	return c
}

func build(cur, base Folded) *node {
	root := &node{name: "all"}
	add := func(f Folded, isBase bool) {
		for stack, v := range f {
			if v == 0 {
				continue
			}
			n := root
			bump := func(n *node) {
				if isBase {
					n.base += v
				} else {
					n.value += v
				}
			}
			bump(n)
			for _, fr := range strings.Split(stack, ";") {
				n = n.child(fr)
				bump(n)
			}
		}
	}
	add(cur, false)
	add(base, true)
	var sortRec func(n *node)
	sortRec = func(n *node) {
		for _, c := range n.children {
			n.order = append(n.order, c)
		}
		// Alphabetical, like flamegraph.pl: the same function sits in the same
		// place in every profile, so two SVGs compare by eye.
		sort.Slice(n.order, func(i, j int) bool { return n.order[i].name < n.order[j].name })
		for _, c := range n.order {
			sortRec(c)
		}
	}
	sortRec(root)
	return root
}

func depth(n *node) int {
	d := 0
	for _, c := range n.order {
		if x := depth(c); x > d {
			d = x
		}
	}
	return d + 1
}

// WriteSVG renders f as a flamegraph.
func WriteSVG(w io.Writer, f Folded, opt Options) error {
	return render(w, f, nil, opt)
}

// WriteDiffSVG renders a differential flamegraph: frame widths are cur's
// weights, and the colour says how each frame's share changed from base to cur
// (red: grew, blue: shrank, the deeper the larger the change). Shares are
// compared, not counts, so two profiles with different sample totals compare
// fairly. Frames only in base do not appear (they have no width in cur).
func WriteDiffSVG(w io.Writer, base, cur Folded, opt Options) error {
	if base == nil {
		base = Folded{}
	}
	return render(w, cur, base, opt)
}

func render(w io.Writer, cur, base Folded, opt Options) error {
	width := float64(opt.Width)
	if width <= 0 {
		width = 1200
	}
	minW := opt.MinWidth
	if minW <= 0 {
		minW = 0.1
	}
	unit := opt.Unit
	if unit == "" {
		unit = "samples"
	}
	root := build(cur, base)
	diff := base != nil
	levels := depth(root)
	height := float64(padTop + levels*frameH + padBot)
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<?xml version="1.0" standalone="no"?>` + "\n")
	p(`<svg version="1.1" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" onload="init(evt)">`+"\n",
		width, height, width, height)
	p("<!-- initprof flamegraph: hover for details, click a frame to zoom, Search (or Ctrl-F) to highlight. -->\n")
	p(`<style type="text/css">
text { font-family: Verdana, sans-serif; font-size: %dpx; fill: rgb(0,0,0); }
#title { text-anchor: middle; font-size: 17px; }
#subtitle { text-anchor: middle; fill: rgb(90,90,90); }
#search, #unzoom { cursor: pointer; fill: rgb(0,0,160); }
#search:hover, #unzoom:hover { text-decoration: underline; }
.hide { display: none; }
g.f:hover > rect { stroke: rgb(0,0,0); stroke-width: 0.5; cursor: pointer; }
</style>
`, fontSize)
	p("<script type=\"text/ecmascript\"><![CDATA[\n%s\n]]></script>\n", script)
	bg := "rgb(238,238,238)"
	if diff {
		bg = "rgb(245,245,250)"
	}
	p(`<rect x="0" y="0" width="%.0f" height="%.0f" fill="%s"/>`+"\n", width, height, bg)
	p(`<text id="title" x="%.1f" y="20">%s</text>`+"\n", width/2, esc(orDefault(opt.Title, "Flame Graph")))
	p(`<text id="subtitle" x="%.1f" y="38">%s</text>`+"\n", width/2, esc(opt.Subtitle))
	p(`<text id="unzoom" class="hide" x="%d" y="20">Reset Zoom</text>`+"\n", padSide)
	p(`<text id="search" x="%.0f" y="20" text-anchor="end">Search</text>`+"\n", width-padSide)
	p(`<text id="matched" x="%.0f" y="%.0f" text-anchor="end"> </text>`+"\n", width-padSide, height-10)
	p(`<text id="details" x="%d" y="%.0f"> </text>`+"\n", padSide, height-10)
	p(`<g id="frames" data-unit="%s" data-total="%d">`+"\n", esc(unit), root.value)

	total := float64(root.value)
	baseTotal := float64(root.base)
	scale := 0.0
	if total > 0 {
		scale = (width - 2*padSide) / total
	}
	var walk func(n *node, x float64, level int)
	walk = func(n *node, x float64, level int) {
		wpx := float64(n.value) * scale
		if wpx < minW {
			return
		}
		y := height - padBot - float64((level+1)*frameH)
		pct := 100 * float64(n.value) / math.Max(total, 1)
		info := fmt.Sprintf("%s (%d %s, %.2f%%)", n.name, n.value, unit, pct)
		fill := color(n.name)
		if level == 0 {
			fill = "rgb(200,200,200)"
		}
		if diff {
			curShare := float64(n.value) / math.Max(total, 1)
			baseShare := float64(n.base) / math.Max(baseTotal, 1)
			d := curShare - baseShare
			info += fmt.Sprintf(", %+.2f%% of total vs base (%d %s there)", 100*d, n.base, unit)
			fill = diffColor(d)
		}
		p(`<g class="f" data-x="%.2f" data-w="%.2f" data-y="%.1f"><title>%s</title><rect x="%.2f" y="%.1f" width="%.2f" height="%d" fill="%s" rx="2" ry="2"/><text x="%.2f" y="%.1f">%s</text></g>`+"\n",
			x, wpx, y, esc(info), x, y, wpx, frameH-1, fill, x+3, y+frameH-4.5, esc(fit(n.name, wpx)))
		cx := x
		for _, c := range n.order {
			walk(c, cx, level+1)
			cx += float64(c.value) * scale
		}
	}
	if root.value > 0 {
		walk(root, padSide, 0)
	} else {
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">no samples</text>`+"\n", width/2, height/2)
	}
	p("</g>\n</svg>\n")
	return bw.Flush()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }

// fit truncates a label to what fits in wpx pixels (Verdana ~0.59 em/char).
func fit(s string, wpx float64) string {
	chars := int((wpx - 6) / (fontSize * 0.59))
	if chars < 3 {
		return ""
	}
	r := []rune(s)
	if len(r) <= chars {
		return s
	}
	return string(r[:chars-2]) + ".."
}

// color gives a frame a stable warm colour from its name, so a function has
// the same colour in every graph; kernel frames are orange-brown, Go runtime
// and loader frames a cooler yellow, to tell the layers apart at a glance.
func color(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	r1 := float64(v&0xff) / 255
	r2 := float64((v>>8)&0xff) / 255
	r3 := float64((v>>16)&0xff) / 255
	switch {
	case strings.HasSuffix(name, KernelSuffix):
		return fmt.Sprintf("rgb(%d,%d,%d)", 200+int(55*r1), 110+int(50*r2), 40+int(30*r3))
	case strings.HasPrefix(name, "_dl_") || strings.HasPrefix(name, "runtime."):
		return fmt.Sprintf("rgb(%d,%d,%d)", 205+int(50*r1), 190+int(50*r2), 50+int(40*r3))
	}
	return fmt.Sprintf("rgb(%d,%d,%d)", 205+int(50*r3), int(230*r1), int(55*r2))
}

// diffColor maps a change of share d (−1…1) to red (grew) or blue (shrank);
// a 5-point change saturates.
func diffColor(d float64) string {
	k := math.Min(math.Abs(d)/0.05, 1)
	c := 235 - int(175*k)
	if d > 0 {
		return fmt.Sprintf("rgb(255,%d,%d)", c, c)
	}
	if d < 0 {
		return fmt.Sprintf("rgb(%d,%d,255)", c, c)
	}
	return "rgb(235,235,235)"
}
