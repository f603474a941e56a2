package clockfault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Layout of struct fl_time_state (faultline_time.h); keep in step.
const (
	magic   = 0x4d544c46 // "FLTM"
	version = 2
	// Size is the file and mapping size: one page.
	Size = 4096

	offMagic   = 0
	offVersion = 4
	offSeq     = 8
	offSlot0   = 16
	slotSize   = 32
	// Within a slot.
	offEnabled  = 0
	offFlags    = 4
	offOffset   = 8
	offDriftPPB = 16
	offBase     = 24
)

// State is what the shim applies: fake = real + Offset + (real - Base) * DriftPPB / 1e9.
type State struct {
	Enabled  bool
	Offset   time.Duration
	DriftPPB int64
	Base     time.Time
}

// File is the agent's writable mapping of the state file. The agent is the
// only writer; Write is not safe for concurrent use.
type File struct {
	mem []byte
}

// Create makes (or resets) the state file at path with real time, readable
// by the app containers, which may run as any user.
func Create(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating state file: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(Size); err != nil {
		return nil, fmt.Errorf("sizing state file: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("state file mode: %w", err)
	}
	return mapFile(f)
}

// Open maps an existing state file for writing (the agent restarted).
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening state file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < Size {
		return nil, fmt.Errorf("state file %s is %d bytes, want %d", path, st.Size(), Size)
	}
	return mapFile(f)
}

func mapFile(f *os.File) (*File, error) {
	mem, err := syscall.Mmap(int(f.Fd()), 0, Size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping state file: %w", err)
	}
	s := &File{mem: mem}
	binary.LittleEndian.PutUint32(mem[offMagic:], magic)
	binary.LittleEndian.PutUint32(mem[offVersion:], version)
	return s, nil
}

func (s *File) seq() *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&s.mem[offSeq])) }
func (s *File) i64(off int) *atomic.Int64 {
	return (*atomic.Int64)(unsafe.Pointer(&s.mem[off]))
}
func (s *File) u32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[off]))
}

// Write publishes st through the latch (faultline_time.h): readers always
// have one complete copy to read, so none waits for the agent or sees half
// an update, even if the agent is descheduled or killed mid-write.
func (s *File) Write(st State) error {
	if s.mem == nil {
		return errors.New("state file closed")
	}
	for range 2 {
		// After this increment readers use the other slot; fill this one.
		seq := s.seq().Add(1)
		s.writeSlot(int(1-seq&1), st)
	}
	return nil
}

func (s *File) writeSlot(i int, st State) {
	base := offSlot0 + i*slotSize
	enabled := uint32(0)
	if st.Enabled {
		enabled = 1
	}
	s.u32(base + offEnabled).Store(enabled)
	s.u32(base + offFlags).Store(0)
	s.i64(base + offOffset).Store(int64(st.Offset))
	s.i64(base + offDriftPPB).Store(st.DriftPPB)
	s.i64(base + offBase).Store(st.Base.UnixNano())
}

// Read returns the current state (for /status and tests), as a reader of
// the shim would see it.
func (s *File) Read() State {
	for {
		seq := s.seq().Load()
		base := offSlot0 + int(seq&1)*slotSize
		st := State{
			Enabled:  s.u32(base+offEnabled).Load() == 1,
			Offset:   time.Duration(s.i64(base + offOffset).Load()),
			DriftPPB: s.i64(base + offDriftPPB).Load(),
			Base:     time.Unix(0, s.i64(base+offBase).Load()),
		}
		if s.seq().Load() == seq {
			return st
		}
	}
}

// Close unmaps the file. The last state written stays in effect.
func (s *File) Close() error {
	if s.mem == nil {
		return nil
	}
	err := syscall.Munmap(s.mem)
	s.mem = nil
	return err
}
