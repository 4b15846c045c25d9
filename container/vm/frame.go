package vm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// The serial protocol. The guest has no disk and no network shared with the
// host, only its console (ttyAMA0 -> qemu's stdout), so results come back as
// text lines mixed with whatever else the console carries (kernel messages,
// the job's own output). Every protocol line starts with a marker; anything
// else is console output. Files travel as base64 between a header with their
// size and SHA-256 and an end line, so corruption (a kernel message printed in
// the middle of a line, a dropped byte) is caught, never written to the host.
//
//	INITPROF-BOOTED mono=<ns> kernel=<release> machine=<uname -m>
//	INITPROF-FILE <size> <sha256> <raw|gzip> <name>
//	<base64 lines of the (compressed) payload, 76 characters>
//	INITPROF-END <name>
//	INITPROF-RESULT exit=<code> run_ns=<ns>
const (
	markBooted = "INITPROF-BOOTED"
	markFile   = "INITPROF-FILE"
	markEnd    = "INITPROF-END"
	markResult = "INITPROF-RESULT"
	// markInterrupt goes the other way: the host writes it to the guest's
	// console input on SIGINT/SIGTERM, and the guest passes SIGINT to the
	// job, which writes what it measured; the files then come back as
	// usual.
	markInterrupt = "INITPROF-INTERRUPT"
	b64Line       = 76 // base64 characters per line (57 bytes), as MIME
)

// writeFrame writes one file as a frame. name is a relative slash path. The
// payload is gzip-compressed when that makes it smaller: the emulated UART
// carries about 0.5 MB/s, and the usual results (JSON, folded stacks, SVG)
// shrink several times.
func writeFrame(w io.Writer, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	enc, payload := "raw", data
	if len(data) > 256 {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(data)
		zw.Close()
		if z.Len() < len(data) {
			enc, payload = "gzip", z.Bytes()
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d %s %s %s\n", markFile, len(data), hex.EncodeToString(sum[:]), enc, name)
	for off := 0; off < len(payload); off += b64Line / 4 * 3 {
		end := min(off+b64Line/4*3, len(payload))
		b.WriteString(base64.StdEncoding.EncodeToString(payload[off:end]))
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s\n", markEnd, name)
	_, err := w.Write(b.Bytes())
	return err
}

// checkName accepts a relative slash path with no "..", no empty or "." parts
// and no spaces at the ends: the host writes it under its out directory.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "\x00\r\n") || path.IsAbs(name) ||
		path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") ||
		strings.TrimSpace(name) != name {
		return fmt.Errorf("result file name %q: want a relative path without '..'", name)
	}
	return nil
}

// frameFile is a file received from the guest.
type frameFile struct {
	Name string
	Data []byte
}

// decoder reads the serial stream line by line. Lines that are not part of the
// protocol are handed back as console output; inside a file frame, a line that
// is not valid base64 is console output too (a whole kernel message printed
// between two data lines), and the frame's size and hash still decide.
type decoder struct {
	// in-progress file
	open bool
	name string
	size int
	sum  string
	gz   bool
	buf  bytes.Buffer

	booted bool
	bootNS int64  // guest CLOCK_MONOTONIC at BOOTED
	kernel string // guest uname -r
	mach   string // guest uname -m

	done   bool
	exit   int
	runNS  int64
	files  []frameFile
	errors []error // corrupt frames: reported, the rest of the stream still read
}

// lineKind says what a line was.
type lineKind int

const (
	lineConsole lineKind = iota
	lineBooted
	lineFrame // part of a file frame
	lineResult
)

// Line consumes one line (without its newline; a trailing \r is dropped, as
// the console's ONLCR turns \n into \r\n).
func (d *decoder) Line(line string) lineKind {
	line = strings.TrimRight(line, "\r")
	if d.open {
		if rest, ok := strings.CutPrefix(line, markEnd+" "); ok {
			d.finish(rest)
			return lineFrame
		}
		if strings.HasPrefix(line, markFile+" ") || strings.HasPrefix(line, markResult+" ") {
			d.errors = append(d.errors, fmt.Errorf("result file %s: frame cut off (no %s line)", d.name, markEnd))
			d.open = false
			return d.Line(line)
		}
		if b, err := base64.StdEncoding.DecodeString(line); err == nil && line != "" {
			d.buf.Write(b)
			return lineFrame
		}
		return lineConsole
	}
	switch {
	case strings.HasPrefix(line, markBooted+" ") || line == markBooted:
		d.booted = true
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "mono":
				d.bootNS, _ = strconv.ParseInt(v, 10, 64)
			case "kernel":
				d.kernel = v
			case "machine":
				d.mach = v
			}
		}
		return lineBooted
	case strings.HasPrefix(line, markFile+" "):
		f := strings.SplitN(line, " ", 5)
		if len(f) != 5 {
			d.errors = append(d.errors, fmt.Errorf("bad frame header %q", line))
			return lineFrame
		}
		size, err := strconv.Atoi(f[1])
		if err != nil || size < 0 || len(f[2]) != 64 || (f[3] != "raw" && f[3] != "gzip") || checkName(f[4]) != nil {
			d.errors = append(d.errors, fmt.Errorf("bad frame header %q", line))
			return lineFrame
		}
		d.open, d.size, d.sum, d.gz, d.name = true, size, f[2], f[3] == "gzip", f[4]
		d.buf.Reset()
		return lineFrame
	case strings.HasPrefix(line, markResult+" "):
		d.done = true
		d.exit = -1
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "exit":
				if n, err := strconv.Atoi(v); err == nil {
					d.exit = n
				}
			case "run_ns":
				d.runNS, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		return lineResult
	}
	return lineConsole
}

func (d *decoder) finish(endName string) {
	d.open = false
	data := bytes.Clone(d.buf.Bytes())
	var zerr error
	if d.gz {
		var zr *gzip.Reader
		if zr, zerr = gzip.NewReader(bytes.NewReader(data)); zerr == nil {
			// Read at most one byte more than announced: a corrupt stream
			// cannot balloon.
			data, zerr = io.ReadAll(io.LimitReader(zr, int64(d.size)+1))
		}
	}
	sum := sha256.Sum256(data)
	switch {
	case endName != d.name:
		d.errors = append(d.errors, fmt.Errorf("result file %s: frame ended as %q", d.name, endName))
	case zerr != nil:
		d.errors = append(d.errors, fmt.Errorf("result file %s: bad gzip payload (corrupted over the console): %v", d.name, zerr))
	case len(data) != d.size:
		d.errors = append(d.errors, fmt.Errorf("result file %s: got %d bytes over the console, the guest sent %d (corrupted line?)", d.name, len(data), d.size))
	case hex.EncodeToString(sum[:]) != d.sum:
		d.errors = append(d.errors, fmt.Errorf("result file %s: SHA-256 mismatch (corrupted over the console)", d.name))
	default:
		d.files = append(d.files, frameFile{Name: d.name, Data: data})
	}
}

// end is called when the stream ends; an open frame is an error.
func (d *decoder) end() {
	if d.open {
		d.errors = append(d.errors, fmt.Errorf("result file %s: stream ended inside its frame", d.name))
		d.open = false
	}
}
