package vdso

import (
	"encoding/binary"
	"fmt"
)

// relocate copies the whole instructions at the start of a function (code,
// at address from) that the 5-byte jump overwrites, rewritten to run at
// address to: RIP-relative operands get their displacement again. It knows
// the instructions compilers put first in the vDSO's functions (pushes,
// register moves, stack adjustments, endbr64, a RIP-relative lea) and
// refuses anything else: a process is left alone rather than patched with
// code that may not mean what it meant.
func relocate(code []byte, from, to uint64) (out []byte, n int, err error) {
	for n < jumpLen {
		l, ripDisp, err := insnLen(code[n:])
		if err != nil {
			return nil, 0, fmt.Errorf("the instruction at +%d of clock_gettime (% x): %w", n, code[n:min(n+8, len(code))], err)
		}
		insn := append([]byte(nil), code[n:n+l]...)
		if ripDisp >= 0 {
			old := int64(int32(binary.LittleEndian.Uint32(insn[ripDisp:])))
			target := int64(from) + int64(n+l) + old
			d := target - (int64(to) + int64(len(out)) + int64(l))
			if d < -1<<31 || d >= 1<<31 {
				return nil, 0, fmt.Errorf("a RIP-relative operand out of reach")
			}
			binary.LittleEndian.PutUint32(insn[ripDisp:], uint32(int32(d)))
		}
		out = append(out, insn...)
		n += l
	}
	return out, n, nil
}

// insnLen is the length of the instruction at b, and where its RIP-relative
// displacement is (-1: none), for the instructions relocate accepts.
func insnLen(b []byte) (n, ripDisp int, err error) {
	if len(b) == 0 {
		return 0, -1, fmt.Errorf("the function ends")
	}
	need := func(l int) (int, int, error) {
		if len(b) < l {
			return 0, -1, fmt.Errorf("the function ends")
		}
		return l, -1, nil
	}
	if len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa {
		return 4, -1, nil // endbr64
	}
	rex := 0
	if b[0]&0xf0 == 0x40 {
		rex = 1
	}
	if len(b) <= rex {
		return 0, -1, fmt.Errorf("the function ends")
	}
	op := b[rex]
	switch {
	case op >= 0x50 && op <= 0x57: // push r
		return need(rex + 1)
	case op == 0x89 || op == 0x8b || op == 0x31 || op == 0x33 || op == 0x85: // mov, xor, test between registers
		if len(b) < rex+2 {
			return 0, -1, fmt.Errorf("the function ends")
		}
		if b[rex+1]>>6 == 3 {
			return rex + 2, -1, nil
		}
	case op == 0x83: // and, sub, add, cmp r, imm8
		if len(b) >= rex+3 && b[rex+1]>>6 == 3 {
			return rex + 3, -1, nil
		}
	case op == 0x81: // the same with imm32
		if len(b) >= rex+6 && b[rex+1]>>6 == 3 {
			return rex + 6, -1, nil
		}
	case op == 0x8d: // lea r, [rip+disp32]
		if len(b) >= rex+6 && b[rex+1]&0xc7 == 0x05 {
			return rex + 6, rex + 2, nil
		}
	}
	return 0, -1, fmt.Errorf("not an instruction the patch knows how to move")
}
