package vdso

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrTraced: the process (a thread of it) is already traced, by a debugger
// or strace; it is left alone.
var ErrTraced = errors.New("already traced by another process")

// stopped is a process with every thread held in a ptrace stop, by the
// calling OS thread (ptrace requests must come from the thread that
// attached: callers lock theirs). If the agent dies meanwhile, the kernel
// detaches and resumes every thread: nothing is left half-done in the
// process, since the patch never changes a thread's registers.
type stopped struct {
	pid  int
	tids []int
	// signals arrived while a thread was held: delivered on detach.
	signals map[int]unix.Signal
}

// stop holds every thread of pid. Threads a running thread creates while
// others are being stopped are found by listing again until no new one
// appears.
func stop(pid int) (*stopped, error) {
	s := &stopped{pid: pid, signals: map[int]unix.Signal{}}
	seen := map[int]bool{}
	for round := 0; ; round++ {
		tids, err := tasks(pid)
		if err != nil {
			s.detach()
			return nil, err
		}
		fresh := 0
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			fresh++
			if err := unix.PtraceSeize(tid); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended
				}
				s.detach()
				if errors.Is(err, unix.EPERM) {
					return nil, fmt.Errorf("process %d: %w", pid, ErrTraced)
				}
				return nil, fmt.Errorf("attaching to thread %d of process %d: %w", tid, pid, err)
			}
			if err := unix.PtraceInterrupt(tid); err != nil {
				_ = unix.PtraceDetach(tid)
				continue
			}
			if ok, err := s.waitStop(tid); err != nil || !ok {
				continue // it exited
			}
			s.tids = append(s.tids, tid)
		}
		if fresh == 0 {
			break
		}
		if round > 100 {
			s.detach()
			return nil, fmt.Errorf("process %d keeps creating threads", pid)
		}
	}
	if len(s.tids) == 0 {
		return nil, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
	}
	return s, nil
}

// waitStop waits for tid's next stop; a signal that stopped it instead of
// our request is kept for detach. false: it exited.
func (s *stopped) waitStop(tid int) (bool, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if ws.Exited() || ws.Signaled() {
			return false, nil
		}
		if ws.Stopped() {
			// Our interrupt (and a group stop) is an event stop, a single
			// step a SIGTRAP; any other stop is a signal on its way to the
			// thread, which it gets on detach.
			if sig := ws.StopSignal(); int(ws)>>16 != unix.PTRACE_EVENT_STOP && sig != unix.SIGTRAP {
				s.signals[tid] = sig
			}
			return true, nil
		}
	}
}

// rip is where tid is.
func rip(tid int) (uint64, error) {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return 0, err
	}
	return r.Rip, nil
}

// stepOut single-steps every thread whose next instruction is inside one
// of the ranges [a+1, a+jumpLen) until it is not: a thread there would go
// on in the middle of the jump written over them.
func (s *stopped) stepOut(starts []uint64) error {
	inside := func(ip uint64) bool {
		for _, a := range starts {
			if ip > a && ip < a+jumpLen {
				return true
			}
		}
		return false
	}
	for _, tid := range s.tids {
		for steps := 0; ; steps++ {
			ip, err := rip(tid)
			if err != nil {
				return fmt.Errorf("reading thread %d: %w", tid, err)
			}
			if !inside(ip) {
				break
			}
			if steps == 16 {
				return fmt.Errorf("thread %d stays inside a clock function's first bytes", tid)
			}
			if err := unix.PtraceSingleStep(tid); err != nil {
				return err
			}
			if ok, err := s.waitStop(tid); err != nil || !ok {
				return fmt.Errorf("thread %d ended while stepped", tid)
			}
		}
	}
	return nil
}

// detach lets every held thread go, with the signals kept for it.
func (s *stopped) detach() {
	for _, tid := range s.tids {
		_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(s.signals[tid]), 0, 0)
	}
	s.tids = nil
}

// tasks lists pid's threads.
func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}
