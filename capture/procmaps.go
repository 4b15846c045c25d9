package capture

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ReadProcMaps reads the executable file mappings of a live process from
// /proc/PID/maps. Call it while the process is alive (at exec and after each
// mmap of code): once it exits the file is gone, and with it the only way to
// tell which library an address belonged to.
func ReadProcMaps(pid int) ([]Mapping, error) {
	path := fmt.Sprintf("/proc/%d/maps", pid)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	defer f.Close()
	var out []Mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		m, ok := parseMapsLine(sc.Text())
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// parseMapsLine parses "start-end perms offset dev inode path" and keeps
// executable mappings only.
func parseMapsLine(line string) (Mapping, bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 || !strings.Contains(fields[1], "x") {
		return Mapping{}, false
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return Mapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(fields[2], 16, 64)
	ino, err4 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Mapping{}, false
	}
	m := Mapping{Start: start, End: end, Offset: off, Inode: ino}
	if len(fields) >= 6 {
		m.Path = strings.Join(fields[5:], " ")
	}
	return m, true
}
