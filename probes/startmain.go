package probes

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// mainFromStart finds main in a binary that has no symbol for it (a stripped
// Rust or C release build, as real extensions ship) by reading glibc's _start:
// the crt1 code at e_entry passes main to __libc_start_main in its first
// argument register, in one of a few fixed forms:
//
//	x86_64   lea rdi, [rip+main]          48 8d 3d rel32        (PIE)
//	         mov rdi, imm32               48 c7 c7 imm32        (non-PIE)
//	         mov rdi, [rip+GOT]           48 8b 3d rel32        (main through the GOT)
//	aarch64  adrp x0, page; add x0, x0, lo12                    (direct)
//	         adrp x0, page; ldr x0, [x0, lo12]                  (through the GOT)
//
// A GOT slot is read from its relocation (R_*_RELATIVE addend) or, for a
// non-PIE binary, from the file. It returns main's virtual address, or an
// error saying why not: a non-glibc _start (Go, musl) is not guessed at.
func mainFromStart(f *elf.File) (uint64, error) {
	code, err := readVaddr(f, f.Entry, 64)
	if err != nil {
		return 0, fmt.Errorf("reading _start: %w", err)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		// glibc's _start begins (after an optional endbr64) with
		// xor ebp, ebp: anything else (Go's _rt0, musl) is not guessed at.
		start := 0
		if len(code) >= 4 && code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && code[3] == 0xfa {
			start = 4
		}
		if len(code) < start+2 || code[start] != 0x31 || code[start+1] != 0xed {
			return 0, errors.New("e_entry is not glibc's _start (no xor ebp, ebp)")
		}
		for i := start; i+7 <= len(code); i++ {
			if code[i] == 0xf4 { // hlt ends _start
				break
			}
			if code[i] != 0x48 {
				continue
			}
			next := f.Entry + uint64(i) + 7
			rel := int64(int32(binary.LittleEndian.Uint32(code[i+3:])))
			switch {
			case code[i+1] == 0x8d && code[i+2] == 0x3d: // lea rdi, [rip+rel]
				return uint64(int64(next) + rel), nil
			case code[i+1] == 0xc7 && code[i+2] == 0xc7: // mov rdi, imm32 (sign-extended)
				return uint64(rel), nil
			case code[i+1] == 0x8b && code[i+2] == 0x3d: // mov rdi, [rip+rel]
				return gotSlot(f, uint64(int64(next)+rel))
			}
		}
	case elf.EM_AARCH64:
		// glibc's _start clears the frame and link registers first.
		glibc := false
		for i := 0; i+4 <= min(len(code), 16); i += 4 {
			glibc = glibc || binary.LittleEndian.Uint32(code[i:]) == 0xd280001d // mov x29, #0
		}
		if !glibc {
			return 0, errors.New("e_entry is not glibc's _start (no mov x29, #0)")
		}
		for i := 0; i+8 <= len(code); i += 4 {
			a := binary.LittleEndian.Uint32(code[i:])
			b := binary.LittleEndian.Uint32(code[i+4:])
			// adrp x0, #imm: 1 immlo(2) 10000 immhi(19) Rd(5), Rd = 0.
			if a&0x9f00001f != 0x90000000 {
				continue
			}
			immlo, immhi := uint64(a>>29&3), uint64(a>>5&0x7ffff)
			off := int64((immhi<<2|immlo)<<43) >> 31 // sign-extend 21 bits, × 4096
			page := uint64(int64((f.Entry+uint64(i))&^0xfff) + off)
			switch {
			case b&0xffc003ff == 0x91000000: // add x0, x0, #imm12
				return followBranch(f, page+uint64(b>>10&0xfff))
			case b&0xffc003ff == 0xf9400000: // ldr x0, [x0, #imm12*8]
				return gotSlot(f, page+uint64(b>>10&0xfff)*8)
			}
		}
	default:
		return 0, fmt.Errorf("no _start decoder for %s", f.Machine)
	}
	return 0, errors.New("_start does not pass main to __libc_start_main in a form initprof knows (not glibc's crt1?)")
}

// followBranch resolves a non-PIE aarch64 crt1's __wrap_main, a lone
// "b main", to main itself.
func followBranch(f *elf.File, va uint64) (uint64, error) {
	code, err := readVaddr(f, va, 8)
	if err != nil {
		return va, nil
	}
	for i := 0; i+4 <= len(code); i += 4 {
		ins := binary.LittleEndian.Uint32(code[i:])
		if ins&0xfffff01f == 0xd503201f { // a hint: nop, or a BTI landing pad
			continue
		}
		if ins&0xfc000000 == 0x14000000 { // b imm26
			off := int64(int32(ins<<6) >> 4) // sign-extend 26 bits, × 4
			return uint64(int64(va) + int64(i) + off), nil
		}
		break
	}
	return va, nil
}

// gotSlot returns what a GOT slot holds once relocated: the addend of its
// RELATIVE relocation in a PIE, or the link-time value in the file.
func gotSlot(f *elf.File, slot uint64) (uint64, error) {
	relative := map[elf.Machine]uint32{elf.EM_X86_64: uint32(elf.R_X86_64_RELATIVE), elf.EM_AARCH64: uint32(elf.R_AARCH64_RELATIVE)}[f.Machine]
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for j := 0; j+24 <= len(data); j += 24 {
			off := f.ByteOrder.Uint64(data[j:])
			info := f.ByteOrder.Uint64(data[j+8:])
			if off == slot && uint32(info) == relative {
				return f.ByteOrder.Uint64(data[j+16:]), nil
			}
		}
	}
	b, err := readVaddr(f, slot, 8)
	if err != nil {
		return 0, fmt.Errorf("reading the GOT slot of main: %w", err)
	}
	if v := f.ByteOrder.Uint64(b); v != 0 {
		return v, nil
	}
	return 0, fmt.Errorf("the GOT slot at %#x that holds main has no RELATIVE relocation", slot)
}

// readVaddr reads n bytes at virtual address va from the PT_LOAD that maps it.
func readVaddr(f *elf.File, va uint64, n int) ([]byte, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || va < p.Vaddr || va >= p.Vaddr+p.Filesz {
			continue
		}
		n = int(min(uint64(n), p.Vaddr+p.Filesz-va))
		b := make([]byte, n)
		if _, err := p.ReadAt(b, int64(va-p.Vaddr)); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("address %#x is in no PT_LOAD segment", va)
}
