package vdso

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Clock functions a vDSO may export (x86-64 and arm64 names).
var clockSymbols = []string{"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__kernel_clock_gettime", "__kernel_gettimeofday"}

// Image is one process's vDSO: where it is mapped and the addresses of its
// clock functions there.
type Image struct {
	Start, End uint64
	// Symbols maps each exported clock function found to its address in
	// the process.
	Symbols map[string]uint64
}

// peek reads another process's memory with process_vm_readv, which asks
// for ptrace rights (CAP_SYS_PTRACE, or the same user) but not for the
// file permissions of /proc/PID/mem, which an agent without
// CAP_DAC_OVERRIDE lacks for a process of another user.
func peek(pid int, addr uint64, buf []byte) error {
	n, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}},
		[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}, 0)
	if err == nil && n != len(buf) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ErrNoVDSO: the process has no vDSO mapping (it exited, or the kernel
// was told not to map one).
var ErrNoVDSO = errors.New("no [vdso] mapping")

// Read finds pid's vDSO and its clock functions. It needs to read the
// process's memory (/proc/PID/mem): the same user and a ptrace-able
// process, or CAP_SYS_PTRACE.
func Read(pid int) (*Image, error) {
	img, _, err := readImage(pid)
	return img, err
}

// readImage reads pid's vDSO.
func readImage(pid int) (*Image, []byte, error) {
	start, end, err := mapping("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, end-start)
	if err := peek(pid, start, buf); err != nil {
		return nil, nil, fmt.Errorf("reading the vDSO of process %d: %w", pid, err)
	}
	syms, err := symbols(buf, start)
	if err != nil {
		return nil, nil, fmt.Errorf("the vDSO of process %d: %w", pid, err)
	}
	return &Image{Start: start, End: end, Symbols: syms}, buf, nil
}

// mapping reads the [vdso] line of a maps file.
func mapping(maps string) (start, end uint64, err error) {
	f, err := os.Open(maps)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, "[vdso]") {
			continue
		}
		lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-")
		if !ok {
			break
		}
		if start, err = strconv.ParseUint(lo, 16, 64); err == nil {
			end, err = strconv.ParseUint(hi, 16, 64)
		}
		if err != nil || end <= start {
			return 0, 0, fmt.Errorf("%s: bad [vdso] line %q", maps, line)
		}
		return start, end, nil
	}
	return 0, 0, ErrNoVDSO
}

// symbols reads the clock functions' addresses from a vDSO image mapped
// at base: its symbols are relative to its first loadable segment.
func symbols(img []byte, base uint64) (map[string]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 && f.Machine != elf.EM_AARCH64 {
		// A 32-bit process's vDSO: the patch is x86-64 code.
		return nil, fmt.Errorf("a %s %s vDSO, not a 64-bit one", f.Class, f.Machine)
	}
	var vaddr uint64
	found := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			vaddr, found = p.Vaddr-p.Off, true
			break
		}
	}
	if !found {
		return nil, errors.New("no loadable segment")
	}
	dyn, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, s := range dyn {
		for _, want := range clockSymbols {
			if s.Name == want && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
				addr := base + s.Value - vaddr
				if addr < base || addr >= base+uint64(len(img)) {
					return nil, fmt.Errorf("%s at %#x lies outside the mapping", s.Name, addr)
				}
				out[s.Name] = addr
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no clock functions exported")
	}
	return out, nil
}
