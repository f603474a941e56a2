package vdso

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The patch lives in the vDSO's own mapping, in the zero padding after its
// image (the last page is padded to its end; nothing reads it): the fake
// functions, a trampoline that runs the real clock_gettime, and the state
// the fakes read, in the latch layout of the time shim's state file
// (faultline_time.h), so both read the same thing the same way. Code there
// reaches the vDSO with 32-bit displacements and needs no memory from the
// process: no system call is ever run inside it.
const (
	// BlockSize is how much padding the patch takes, at the end of the
	// mapping.
	BlockSize = 1024

	stateOff = 0   // magic, version, seq, slot[2]: 80 bytes
	stateLen = 80  // as clockfault's first 80 bytes
	codeOff  = 128 // the code after the state
	jumpLen  = 5   // jmp rel32 over a function's first bytes
)

// Layout of the state (faultline_time.h).
const (
	stMagic    = 0x4d544c46
	stVersion  = 2
	stSeq      = 8
	stSlot0    = 16
	stSlotSize = 32
)

// Bounds the fake enforces, as the shim does: outside them it returns real
// time.
const (
	maxOffsetNS = 365 * 24 * 3600 * 1_000_000_000
	maxDriftPPB = 500_000_000
)

// block is the patch for one vDSO: bytes to write at blockAddr, and where
// each patched function's jump goes.
type block struct {
	code []byte
	// entries maps a function's address to its fake's.
	entries map[uint64]uint64
}

// asm is a tiny x86-64 assembler: bytes, labels and rel8/rel32 fix-ups.
type asm struct {
	b      []byte
	labels map[string]int
	fix    []fixup
}

type fixup struct {
	at    int // where the displacement goes
	size  int // 1 or 4
	label string
	abs   uint64 // for an absolute target (rel32 to an address outside)
	base  uint64 // where b[0] will be, for abs
}

func (a *asm) emit(bs ...byte) { a.b = append(a.b, bs...) }
func (a *asm) label(n string)  { a.labels[n] = len(a.b) }

// rel8 emits op followed by a rel8 to label.
func (a *asm) rel8(op byte, label string) {
	a.emit(op, 0)
	a.fix = append(a.fix, fixup{at: len(a.b) - 1, size: 1, label: label})
}

// jcc is a jump (0xeb, or a 0x7x condition) to label in its rel32 form,
// for targets past 127 bytes.
func (a *asm) jcc(op8 byte, label string) {
	if op8 == 0xeb {
		a.rel32(label, 0xe9)
		return
	}
	a.rel32(label, 0x0f, op8+0x10)
}

// rel32 emits op bytes followed by a rel32 to label.
func (a *asm) rel32(label string, op ...byte) {
	a.emit(op...)
	a.emit(0, 0, 0, 0)
	a.fix = append(a.fix, fixup{at: len(a.b) - 4, size: 4, label: label})
}

// rel32abs emits op bytes followed by a rel32 to an absolute address.
func (a *asm) rel32abs(target, base uint64, op ...byte) {
	a.emit(op...)
	a.emit(0, 0, 0, 0)
	a.fix = append(a.fix, fixup{at: len(a.b) - 4, size: 4, abs: target, base: base})
}

func (a *asm) imm32(v int32) { a.b = binary.LittleEndian.AppendUint32(a.b, uint32(v)) }
func (a *asm) imm64(v int64) { a.b = binary.LittleEndian.AppendUint64(a.b, uint64(v)) }

func (a *asm) link() error {
	for _, f := range a.fix {
		end := int64(f.at + f.size)
		var d int64
		if f.label != "" {
			to, ok := a.labels[f.label]
			if !ok {
				return fmt.Errorf("no label %s", f.label)
			}
			d = int64(to) - end
		} else {
			d = int64(f.abs) - int64(f.base) - end
		}
		switch {
		case f.size == 1 && d >= -128 && d <= 127:
			a.b[f.at] = byte(int8(d))
		case f.size == 4 && d >= -1<<31 && d < 1<<31:
			binary.LittleEndian.PutUint32(a.b[f.at:], uint32(int32(d)))
		default:
			return fmt.Errorf("displacement %d does not fit %d bytes", d, f.size)
		}
	}
	return nil
}

// build assembles the patch for a vDSO whose block starts at base: the
// fakes for the functions present in syms, and the trampoline that runs
// clock_gettime's first instructions (stolen, relocated) and jumps back.
// clock_gettime is required; gettimeofday and time are faked through it.
func build(base uint64, syms map[string]uint64, prologue []byte) (*block, error) {
	cg, ok := syms["__vdso_clock_gettime"]
	if !ok {
		return nil, errors.New("the vDSO exports no __vdso_clock_gettime")
	}
	a := &asm{labels: map[string]int{}, b: make([]byte, codeOff)}
	stolen, n, err := relocate(prologue, cg, base+uint64(codeOff))
	if err != nil {
		return nil, err
	}
	// The trampoline: the real clock_gettime's first n bytes, then on.
	a.label("real_cg")
	a.emit(stolen...)
	a.rel32abs(cg+uint64(n), base, 0xe9)

	a.align()
	a.label("fake_cg")       // int fake_cg(clockid_t edi, struct timespec *rsi)
	a.emit(0x57, 0x56, 0x53) // push rdi; push rsi; push rbx (aligns the stack)
	a.rel32("real_cg", 0xe8) // call real_cg
	a.emit(0x5b, 0x5e, 0x5f) // pop rbx; pop rsi; pop rdi
	a.emit(0x85, 0xc0)       // test eax, eax
	a.jcc(0x75, "ret")       // jnz ret: the real call failed, say so
	a.emit(0x85, 0xff)       // test edi, edi (CLOCK_REALTIME)
	a.rel8(0x74, "apply")
	a.emit(0x83, 0xff, 0x05) // cmp edi, 5 (CLOCK_REALTIME_COARSE)
	a.jcc(0x75, "ret")
	a.label("apply")
	a.rel32("state", 0x4c, 0x8d, 0x05) // lea r8, [rip+state]
	a.emit(0x41, 0x81, 0x38)           // cmp dword [r8], magic
	a.imm32(stMagic)
	a.jcc(0x75, "zero")
	a.emit(0x41, 0x81, 0x78, 0x04) // cmp dword [r8+4], version
	a.imm32(stVersion)
	a.jcc(0x75, "zero")
	a.emit(0xb9, 64, 0, 0, 0) // mov ecx, 64: tries, as the shim
	a.label("retry")
	a.emit(0x4d, 0x8b, 0x48, stSeq)         // mov r9, [r8+8]: seq
	a.emit(0x4d, 0x89, 0xca)                // mov r10, r9
	a.emit(0x41, 0x83, 0xe2, 0x01)          // and r10d, 1
	a.emit(0x49, 0xc1, 0xe2, 0x05)          // shl r10, 5: the slot's offset
	a.emit(0x4f, 0x8d, 0x54, 0x10, stSlot0) // lea r10, [r8+r10+16]
	a.emit(0x41, 0x8b, 0x02)                // mov eax, [r10]: enabled
	a.emit(0x49, 0x8b, 0x7a, 0x08)          // mov rdi, [r10+8]: offset
	a.emit(0x4d, 0x8b, 0x5a, 0x10)          // mov r11, [r10+16]: drift
	a.emit(0x4d, 0x8b, 0x52, 0x18)          // mov r10, [r10+24]: base
	// x86 keeps loads in order: seq unchanged means the slot was whole.
	a.emit(0x4d, 0x3b, 0x48, stSeq) // cmp r9, [r8+8]
	a.rel8(0x74, "got")
	a.emit(0xff, 0xc9) // dec ecx
	a.rel8(0x75, "retry")
	a.jcc(0xeb, "zero") // the writer is faster than we read: real time
	a.label("got")
	a.emit(0x85, 0xc0) // test eax, eax
	a.jcc(0x74, "zero")
	a.emit(0x48, 0xb8) // mov rax, maxOffset
	a.imm64(maxOffsetNS)
	a.emit(0x48, 0x39, 0xc7) // cmp rdi, rax
	a.jcc(0x7f, "zero")      // jg
	a.emit(0x48, 0xf7, 0xd8) // neg rax
	a.emit(0x48, 0x39, 0xc7) // cmp rdi, rax
	a.jcc(0x7c, "zero")      // jl
	a.emit(0x49, 0x81, 0xfb) // cmp r11, maxDrift
	a.imm32(maxDriftPPB)
	a.jcc(0x7f, "zero")
	a.emit(0x49, 0x81, 0xfb) // cmp r11, -maxDrift
	a.imm32(-maxDriftPPB)
	a.jcc(0x7c, "zero")
	a.emit(0x48, 0x8b, 0x06) // mov rax, [rsi]: tv_sec
	a.emit(0x48, 0x69, 0xc0) // imul rax, rax, 1e9
	a.imm32(1_000_000_000)
	a.emit(0x48, 0x03, 0x46, 0x08) // add rax, [rsi+8]: real ns
	a.emit(0x49, 0x89, 0xc0)       // mov r8, rax
	a.emit(0x49, 0x01, 0xf8)       // add r8, rdi: + offset
	a.emit(0x4d, 0x85, 0xdb)       // test r11, r11
	a.rel8(0x74, "store")
	// (real - base) * drift / 1e9 in 128 bits: with |drift| bounded the
	// quotient always fits, so idiv never faults.
	a.emit(0x4c, 0x29, 0xd0) // sub rax, r10
	a.emit(0x49, 0xf7, 0xeb) // imul r11: rdx:rax
	a.emit(0x48, 0xc7, 0xc1) // mov rcx, 1e9
	a.imm32(1_000_000_000)
	a.emit(0x48, 0xf7, 0xf9) // idiv rcx
	a.emit(0x49, 0x01, 0xc0) // add r8, rax
	a.label("store")
	a.emit(0x4d, 0x85, 0xc0) // test r8, r8
	a.rel8(0x79, "pos")      // jns
	a.emit(0x45, 0x31, 0xc0) // xor r8d, r8d: no time before 1970
	a.label("pos")
	a.emit(0x4c, 0x89, 0xc0) // mov rax, r8
	a.emit(0x31, 0xd2)       // xor edx, edx
	a.emit(0x48, 0xc7, 0xc1) // mov rcx, 1e9
	a.imm32(1_000_000_000)
	a.emit(0x48, 0xf7, 0xf1)       // div rcx
	a.emit(0x48, 0x89, 0x06)       // mov [rsi], rax
	a.emit(0x48, 0x89, 0x56, 0x08) // mov [rsi+8], rdx
	a.label("zero")
	a.emit(0x31, 0xc0) // xor eax, eax
	a.label("ret")
	a.emit(0xc3)

	a.align()
	a.label("fake_gtod")                 // int fake_gtod(struct timeval *rdi, struct timezone *rsi)
	a.emit(0x56, 0x57)                   // push rsi; push rdi
	a.emit(0x48, 0x83, 0xec, 0x18)       // sub rsp, 24
	a.emit(0x31, 0xff)                   // xor edi, edi
	a.emit(0x48, 0x89, 0xe6)             // mov rsi, rsp
	a.rel32("fake_cg", 0xe8)             // call fake_cg
	a.emit(0x48, 0x8b, 0x7c, 0x24, 0x18) // mov rdi, [rsp+24]
	a.emit(0x48, 0x8b, 0x74, 0x24, 0x20) // mov rsi, [rsp+32]
	a.emit(0x85, 0xc0)                   // test eax, eax
	a.rel8(0x75, "gtod_out")
	a.emit(0x48, 0x85, 0xff) // test rdi, rdi
	a.rel8(0x74, "gtod_tz")
	a.emit(0x48, 0x8b, 0x04, 0x24)       // mov rax, [rsp]
	a.emit(0x48, 0x89, 0x07)             // mov [rdi], rax
	a.emit(0x48, 0x8b, 0x44, 0x24, 0x08) // mov rax, [rsp+8]
	a.emit(0x31, 0xd2)                   // xor edx, edx
	a.emit(0xb9, 0xe8, 0x03, 0, 0)       // mov ecx, 1000
	a.emit(0x48, 0xf7, 0xf1)             // div rcx
	a.emit(0x48, 0x89, 0x47, 0x08)       // mov [rdi+8], rax
	a.label("gtod_tz")
	a.emit(0x48, 0x85, 0xf6) // test rsi, rsi
	a.rel8(0x74, "gtod_zero")
	a.emit(0x48, 0xc7, 0x06, 0, 0, 0, 0) // mov qword [rsi], 0: UTC, no DST
	a.label("gtod_zero")
	a.emit(0x31, 0xc0) // xor eax, eax
	a.label("gtod_out")
	a.emit(0x48, 0x83, 0xc4, 0x18) // add rsp, 24
	a.emit(0x5f, 0x5e)             // pop rdi; pop rsi
	a.emit(0xc3)

	a.align()
	a.label("fake_time")           // time_t fake_time(time_t *rdi)
	a.emit(0x57)                   // push rdi
	a.emit(0x48, 0x83, 0xec, 0x10) // sub rsp, 16
	a.emit(0x31, 0xff)             // xor edi, edi
	a.emit(0x48, 0x89, 0xe6)       // mov rsi, rsp
	a.rel32("fake_cg", 0xe8)       // call fake_cg
	a.emit(0x48, 0x8b, 0x04, 0x24) // mov rax, [rsp]
	a.emit(0x48, 0x83, 0xc4, 0x10) // add rsp, 16
	a.emit(0x5f)                   // pop rdi
	a.emit(0x48, 0x85, 0xff)       // test rdi, rdi
	a.rel8(0x74, "time_ret")
	a.emit(0x48, 0x89, 0x07) // mov [rdi], rax
	a.label("time_ret")
	a.emit(0xc3)

	a.labels["state"] = stateOff
	if err := a.link(); err != nil {
		return nil, err
	}
	if len(a.b) > BlockSize {
		return nil, fmt.Errorf("the patch is %d bytes, more than %d", len(a.b), BlockSize)
	}
	b := &block{code: a.b, entries: map[uint64]uint64{cg: base + uint64(a.labels["fake_cg"])}}
	for name, l := range map[string]string{"__vdso_gettimeofday": "fake_gtod", "__vdso_time": "fake_time"} {
		if addr, ok := syms[name]; ok {
			b.entries[addr] = base + uint64(a.labels[l])
		}
	}
	return b, nil
}

// align pads with int3 to 16 bytes.
func (a *asm) align() {
	for len(a.b)%16 != 0 {
		a.emit(0xcc)
	}
}

// jump is the 5-byte jmp rel32 written over a function's first bytes.
func jump(from, to uint64) []byte {
	b := []byte{0xe9, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(int64(to)-int64(from)-jumpLen)))
	return b
}
