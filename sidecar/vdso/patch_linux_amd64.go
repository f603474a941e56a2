package vdso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNoRoom: the vDSO has no zero padding at its end for the patch.
var ErrNoRoom = errors.New("no free room at the end of the vDSO")

// Patched is one process whose vDSO clock functions jump to the fakes.
// Every write happens with the process's threads held, through ptrace
// (PTRACE_POKEDATA writes the vDSO's read-only pages as a debugger does),
// after checking that the block at that address is still this package's:
// a process that exec'd or exited, and whatever got its pid, is never
// written.
type Patched struct {
	Pid   int
	block uint64
	// orig are the bytes the jumps replaced, by address.
	orig map[uint64][]byte
	mu   sync.Mutex
	seq  uint64
}

// Patch makes pid's vDSO clock functions apply p, and later changes given
// to Update, until Restore. The process keeps running but for a moment
// while its threads are held for the writes (no thread is ever moved or
// made to run anything). A process already patched (a child forked from a
// patched one, or one a dead agent patched) is taken over as it is.
func Patch(pid int, p Params) (*Patched, error) {
	img, buf, err := readImage(pid)
	if err != nil {
		return nil, err
	}
	if len(buf) < 2*BlockSize {
		return nil, ErrNoRoom
	}
	blockAddr := img.End - BlockSize
	pt := &Patched{Pid: pid, block: blockAddr, orig: map[uint64][]byte{}}
	cg := img.Symbols["__vdso_clock_gettime"]
	tail := buf[len(buf)-BlockSize:]
	ours := binary.LittleEndian.Uint32(tail[stateOff:]) == stMagic
	if ours && cg != 0 && buf[cg-img.Start] == 0xe9 {
		if err := pt.adopt(img, buf); err != nil {
			return nil, err
		}
		return pt, pt.Update(p)
	}
	// The padding must be zeros, or a block of ours whose jumps were
	// taken back (restored): it is written again, the same bytes.
	if !ours && !bytes.Equal(tail, make([]byte, BlockSize)) {
		return nil, ErrNoRoom
	}
	if cg == 0 {
		return nil, errors.New("the vDSO exports no __vdso_clock_gettime")
	}
	off := cg - img.Start
	blk, err := build(blockAddr, img.Symbols, buf[off:min(off+32, uint64(len(buf)))])
	if err != nil {
		return nil, err
	}
	pt.seq = 2
	if ours {
		pt.seq = binary.LittleEndian.Uint64(tail[stSeq:]) + 2
	}
	writeState(blk.code, p, pt.seq)
	for fn := range blk.entries {
		o := fn - img.Start
		pt.orig[fn] = slices.Clone(buf[o : o+jumpLen])
	}
	err = held(pid, slices.Collect(maps.Keys(blk.entries)), func(tid int) error {
		// The vDSO must be the one read: not replaced by an exec since.
		var now [BlockSize]byte
		if err := peek(pid, blockAddr, now[:]); err != nil || !bytes.Equal(now[:], tail) {
			return errors.New("the process changed while being patched")
		}
		// The block first: no jump leads there before it is whole.
		if err := poke(tid, blockAddr, blk.code); err != nil {
			return err
		}
		for fn, fake := range blk.entries {
			if err := poke(tid, fn, jump(fn, fake)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("patching process %d: %w", pid, err)
	}
	return pt, nil
}

// adopt takes over a patch written earlier: into a parent this process was
// forked from, or by an agent that died. The bytes the jumps replaced are
// the agent's own vDSO's at the same offsets: one kernel, one image
// (checked: the rest of the function must be the same).
func (pt *Patched) adopt(img *Image, buf []byte) error {
	own, ownBuf, err := readImage(os.Getpid())
	if err != nil {
		return err
	}
	for name, fn := range img.Symbols {
		o := fn - img.Start
		if buf[o] != 0xe9 {
			continue
		}
		ofn, ok := own.Symbols[name]
		if !ok || ofn-own.Start != o || !bytes.Equal(ownBuf[o+jumpLen:o+32], buf[o+jumpLen:o+32]) {
			return errors.New("this vDSO differs from the agent's: cannot take over its patch")
		}
		pt.orig[fn] = slices.Clone(ownBuf[o : o+jumpLen])
	}
	pt.seq = binary.LittleEndian.Uint64(buf[len(buf)-BlockSize+stSeq:])
	return nil
}

// held runs f while every thread of pid is held and none is inside the
// first bytes of the functions at starts; f writes through tid.
func held(pid int, starts []uint64, f func(tid int) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, err := stop(pid)
	if err != nil {
		return err
	}
	defer s.detach()
	if err := s.stepOut(starts); err != nil {
		return err
	}
	return f(s.tids[0])
}

// poke writes b at addr in the (held) process of tid.
func poke(tid int, addr uint64, b []byte) error {
	n, err := unix.PtracePokeData(tid, uintptr(addr), b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// ours says whether the block at pt.block is still this package's.
func (pt *Patched) ours() bool {
	var m [4]byte
	return peek(pt.Pid, pt.block, m[:]) == nil && binary.LittleEndian.Uint32(m[:]) == stMagic
}

// Update publishes p to the patched process, as the time shim's writer
// does (a latch: a reader always finds one whole copy).
func (pt *Patched) Update(p Params) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	err := held(pt.Pid, nil, func(tid int) error {
		if !pt.ours() {
			return errors.New("no longer the patched program")
		}
		for range 2 {
			pt.seq++
			var slot [stSlotSize]byte
			putSlot(slot[:], p)
			i := 1 - pt.seq&1
			if err := poke(tid, pt.block+stSeq, binary.LittleEndian.AppendUint64(nil, pt.seq)); err != nil {
				return err
			}
			if err := poke(tid, pt.block+stSlot0+i*stSlotSize, slot[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("process %d: %w", pt.Pid, err)
	}
	return nil
}

// Restore writes the functions' first bytes back; the block stays, unused
// (a thread may still be inside it).
func (pt *Patched) Restore() error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if len(pt.orig) == 0 {
		return nil
	}
	err := held(pt.Pid, nil, func(tid int) error {
		if !pt.ours() {
			return errors.New("no longer the patched program")
		}
		for fn, b := range pt.orig {
			if err := poke(tid, fn, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restoring process %d: %w", pt.Pid, err)
	}
	pt.orig = nil
	return nil
}

// Alive says whether the process is still the one patched: after an exec
// (a new program, a new vDSO) or an exit it is not.
func (pt *Patched) Alive() bool { return pt.ours() }

func writeState(block []byte, p Params, seq uint64) {
	binary.LittleEndian.PutUint32(block[stateOff:], stMagic)
	binary.LittleEndian.PutUint32(block[stateOff+4:], stVersion)
	binary.LittleEndian.PutUint64(block[stSeq:], seq)
	putSlot(block[stSlot0:], p)
	putSlot(block[stSlot0+stSlotSize:], p)
}

func putSlot(b []byte, p Params) {
	en := uint32(0)
	if p.Enabled {
		en = 1
	}
	binary.LittleEndian.PutUint32(b[0:], en)
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.Offset))
	binary.LittleEndian.PutUint64(b[16:], uint64(p.DriftPPB))
	binary.LittleEndian.PutUint64(b[24:], uint64(p.Base.UnixNano()))
}
