package vdso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Params is the clock fault, as the time shim's state holds it:
// fake = real + Offset + (real - Base) * DriftPPB / 1e9, for CLOCK_REALTIME
// and CLOCK_REALTIME_COARSE (and gettimeofday and time, through them).
type Params struct {
	Enabled  bool
	Offset   time.Duration
	DriftPPB int64
	Base     time.Time
}

// ErrNoRoom: the vDSO has no zero padding at its end for the patch.
var ErrNoRoom = errors.New("no free room at the end of the vDSO")

// Patched is one process whose vDSO clock functions jump to the fakes.
type Patched struct {
	Pid int
	// mem is the process's memory, bound to the process it was opened
	// for: after an exec or an exit, writes fail rather than reach
	// another program (or another process that got the pid).
	mem   *os.File
	block uint64
	// orig are the bytes the jumps replaced, by address.
	orig map[uint64][]byte
	mu   sync.Mutex
	seq  uint64
}

// Patch makes pid's vDSO clock functions apply p, and later changes given
// to Update, until Restore. The process keeps running but for a moment
// while its threads are held for the jumps to be written (no thread is
// ever moved or made to run anything). A process already patched (a child
// forked from a patched one) is taken over as it is.
func Patch(pid int, p Params) (*Patched, error) {
	mem, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening process %d: %w", pid, err)
	}
	pt, err := patch(pid, mem, p)
	if err != nil {
		mem.Close()
		return nil, err
	}
	return pt, nil
}

func patch(pid int, mem *os.File, p Params) (*Patched, error) {
	img, buf, err := readImage(pid, mem)
	if err != nil {
		return nil, err
	}
	if len(buf) < 2*BlockSize {
		return nil, ErrNoRoom
	}
	blockAddr := img.End - BlockSize
	pt := &Patched{Pid: pid, mem: mem, block: blockAddr, orig: map[uint64][]byte{}}
	cg := img.Symbols["__vdso_clock_gettime"]
	tail := buf[len(buf)-BlockSize:]
	ours := binary.LittleEndian.Uint32(tail[stateOff:]) == stMagic
	if ours && cg != 0 && buf[cg-img.Start] == 0xe9 {
		// Patched already: by the parent this process was forked from,
		// or by an agent that died. Take it over.
		if err := pt.adopt(img, buf); err != nil {
			return nil, err
		}
		return pt, pt.update(p)
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
	// Nobody runs the block until a jump leads there: it is written while
	// the process runs.
	if _, err := mem.WriteAt(blk.code, int64(blockAddr)); err != nil {
		return nil, fmt.Errorf("writing the patch into process %d: %w", pid, err)
	}
	for fn := range blk.entries {
		o := fn - img.Start
		pt.orig[fn] = slices.Clone(buf[o : o+jumpLen])
	}
	err = held(pid, slices.Collect(maps.Keys(blk.entries)), func() error {
		for fn, fake := range blk.entries {
			if _, err := mem.WriteAt(jump(fn, fake), int64(fn)); err != nil {
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
	self, err := os.Open("/proc/self/mem")
	if err != nil {
		return err
	}
	defer self.Close()
	own, ownBuf, err := readImage(os.Getpid(), self)
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
	var seq [8]byte
	if _, err := pt.mem.ReadAt(seq[:], int64(pt.block+stSeq)); err != nil {
		return err
	}
	pt.seq = binary.LittleEndian.Uint64(seq[:])
	return nil
}

// held runs f while every thread of pid is held and none is inside the
// first bytes of the functions at starts.
func held(pid int, starts []uint64, f func() error) error {
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
	return f()
}

// Update publishes p to the patched process, as the time shim's writer
// does (a latch: a reader always finds one whole copy).
func (pt *Patched) Update(p Params) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.update(p)
}

func (pt *Patched) update(p Params) error {
	for range 2 {
		pt.seq++
		var slot [stSlotSize]byte
		putSlot(slot[:], p)
		i := 1 - pt.seq&1
		if _, err := pt.mem.WriteAt(binary.LittleEndian.AppendUint64(nil, pt.seq), int64(pt.block+stSeq)); err != nil {
			return fmt.Errorf("process %d: %w", pt.Pid, err)
		}
		if _, err := pt.mem.WriteAt(slot[:], int64(pt.block+stSlot0+i*stSlotSize)); err != nil {
			return fmt.Errorf("process %d: %w", pt.Pid, err)
		}
	}
	return nil
}

// Restore writes the functions' first bytes back; the block stays, unused
// (a thread may still be inside it). Close releases the process.
func (pt *Patched) Restore() error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if len(pt.orig) == 0 {
		return nil
	}
	err := held(pt.Pid, nil, func() error {
		for fn, b := range pt.orig {
			if _, err := pt.mem.WriteAt(b, int64(fn)); err != nil {
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

// Alive says whether the process is still the one patched: its memory
// handle fails once it exits or execs (a new program, a new vDSO).
func (pt *Patched) Alive() bool {
	var b [1]byte
	_, err := pt.mem.ReadAt(b[:], int64(pt.block))
	return err == nil
}

// Close releases the process's memory handle.
func (pt *Patched) Close() error { return pt.mem.Close() }

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
