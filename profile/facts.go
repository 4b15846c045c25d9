package profile

import (
	"fmt"
	"strings"

	"github.com/initprof/initprof/elfinfo"
)

// LoadFacts reads the ELF facts of the binary at path that matter for load
// cost (size, linkage, BIND_NOW, RELR, relocations by type, relocated
// pages, NEEDED), formatted for compare's side-by-side rows. A file that
// cannot be read as ELF gets one "error" fact saying why.
func LoadFacts(path string) []Fact {
	info, err := elfinfo.Open(path)
	if err != nil {
		return []Fact{{Name: "error", Value: err.Error()}}
	}
	return ELFFacts(info)
}

// ELFFacts are LoadFacts' rows for an opened binary.
func ELFFacts(info *elfinfo.Info) []Fact {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return []Fact{
		{Name: "size", Value: fmt.Sprintf("%d", info.FileSize)},
		{Name: "linkage", Value: info.Linkage},
		{Name: "BIND_NOW", Value: yes(info.BindNow || info.DF1Now)},
		{Name: "RELR", Value: yes(info.Relr)},
		{Name: "relocs RELATIVE", Value: fmt.Sprintf("%d", info.Relocs.Relative)},
		{Name: "relocs GLOB_DAT", Value: fmt.Sprintf("%d", info.Relocs.GlobDat)},
		{Name: "relocs JUMP_SLOT", Value: fmt.Sprintf("%d", info.Relocs.JumpSlot)},
		{Name: "relocs other", Value: fmt.Sprintf("%d", info.Relocs.Other)},
		{Name: "relocated pages", Value: fmt.Sprintf("%d", info.RelocPages)},
		{Name: "NEEDED", Value: strings.Join(info.Needed, " ")},
	}
}
