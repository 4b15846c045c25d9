package elfinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// HeaderArch is the architecture (the uname -m style name Info.Arch uses)
// of the ELF file whose first bytes are head, and false when head is not an
// ELF header. It needs only the first 20 bytes, so an archive's member can
// be checked before it is unpacked (container/layers refuses a layer built
// for the other architecture before writing anything).
func HeaderArch(head []byte) (string, bool) {
	if len(head) < 20 || !bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
		return "", false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(head[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	return archName(elf.Machine(bo.Uint16(head[18:20]))), true
}

// HostArch is the architecture of this machine in the same naming
// ("x86_64", "aarch64"), "" for one initprof does not know.
func HostArch() string { return hostArch() }
