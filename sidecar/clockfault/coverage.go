package clockfault

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is one process the agent can see and whether the shim reaches it.
type Process struct {
	PID      int    `json:"pid"`
	Comm     string `json:"comm"`
	Affected bool   `json:"affected"`
	// Method is what reaches it: shim (LD_PRELOAD), vdso (its vDSO
	// clock functions patched) or none.
	Method string `json:"method,omitempty"`
	// Reason says why not, in words a user can act on.
	Reason string `json:"reason,omitempty"`
}

// Coverage lists the processes under procRoot (normally /proc; with
// shareProcessNamespace the pod's processes are visible) other than skip,
// and whether each has the shim mapped. Statically linked programs (most Go
// binaries) never load LD_PRELOAD libraries and are called out as such.
func Coverage(procRoot string, skip int) ([]Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue // exited, or not ours to read
		}
		p := Process{PID: pid, Comm: strings.TrimSpace(string(comm))}
		mapped, err := shimMapped(filepath.Join(dir, "maps"))
		switch {
		case err != nil:
			p.Reason = "cannot read its memory map: " + err.Error()
		case mapped:
			p.Affected = true
		case isStatic(filepath.Join(dir, "exe")):
			p.Reason = "statically linked (most Go binaries are): LD_PRELOAD cannot reach it"
		default:
			p.Reason = "the shim is not loaded: it was started without LD_PRELOAD, or before the shim existed"
		}
		out = append(out, p)
	}
	return out, nil
}

func shimMapped(maps string) (bool, error) {
	f, err := os.Open(maps)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "libfaultline-time") {
			return true, nil
		}
	}
	return false, sc.Err()
}

// isStatic reports an ELF executable without a program interpreter: the
// dynamic loader, which is what honours LD_PRELOAD, never runs for it.
func isStatic(exe string) bool {
	f, err := elf.Open(exe)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
