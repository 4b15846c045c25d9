package pprofout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/initprof/initprof/profile/flame"
)

// UnitName names value index vi of a CPU or off-CPU profile.
func UnitName(vi int) string {
	if vi == 1 {
		return "ns"
	}
	return "samples"
}

// DescribeFilters is "k=v k=v", sorted, for titles and errors.
func DescribeFilters(filters map[string]string) string {
	var parts []string
	for k, v := range filters {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// LoadFolded reads a pprof profile or folded text at path, applies the label filters
// and returns the folded stacks, the unfiltered total and the value index it
// used (vi < 0: chosen from the profile's sample types).
func LoadFolded(path string, filters map[string]string, vi int) (flame.Folded, int64, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, vi, fmt.Errorf("profile %s does not exist", path)
		}
		return nil, 0, vi, fmt.Errorf("cannot read profile %s: %v", path, err)
	}
	if isFoldedName(path) {
		f, total, err := foldedText(path, data, filters)
		return f, total, max(vi, 0), err
	}
	p, perr := profile.ParseData(data)
	if perr != nil {
		if f, total, ferr := foldedText(path, data, filters); ferr == nil && len(f) > 0 {
			return f, total, max(vi, 0), nil
		}
		return nil, 0, vi, fmt.Errorf("%s is neither a pprof profile (cpu.pb.gz) nor folded stacks: %v", path, perr)
	}
	if vi < 0 {
		// auto: an off-CPU profile's intervals differ wildly in length, so
		// its frames are weighted by time; a CPU profile's by samples.
		vi = 0
		if len(p.SampleType) > 1 && p.SampleType[1].Type == "offcpu" {
			vi = 1
		}
	}
	if vi >= len(p.SampleType) {
		return nil, 0, vi, fmt.Errorf("%s has no %s values (sample types: %v)", path, UnitName(vi), p.SampleType)
	}
	all := Folded(p, nil, vi)
	f := Folded(p, filters, vi)
	if len(f) == 0 && len(filters) > 0 {
		var hints []string
		for k := range filters {
			vals := LabelValues(p, k)
			if len(vals) == 0 {
				hints = append(hints, fmt.Sprintf("it has no %s labels", k))
			} else {
				hints = append(hints, fmt.Sprintf("%s values present: %s", k, strings.Join(vals, ", ")))
			}
		}
		sort.Strings(hints)
		return nil, 0, vi, fmt.Errorf("no samples in %s match %s (%s)", path, DescribeFilters(filters), strings.Join(hints, "; "))
	}
	return f, all.Total(), vi, nil
}

func isFoldedName(path string) bool {
	return strings.HasSuffix(path, ".folded") || strings.HasSuffix(path, ".folded.txt")
}

func foldedText(path string, data []byte, filters map[string]string) (flame.Folded, int64, error) {
	if len(filters) > 0 {
		return nil, 0, fmt.Errorf("%s is folded text, which has no labels: --%s needs a cpu.pb.gz", path, firstKey(filters))
	}
	f, err := flame.ReadFolded(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v", path, err)
	}
	return f, f.Total(), nil
}

func firstKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0]
}
