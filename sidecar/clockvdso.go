package sidecar

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/clockfault"
	"github.com/faultline-dev/faultline/sidecar/vdso"
)

// EnvClockVDSO, set to "true" by the webhook where a policy allows it,
// lets the agent patch the vDSO of processes the time shim does not reach.
const EnvClockVDSO = v1alpha1.EnvClockVDSO

// vdsoDriver patches the clock functions of the pod's processes that the
// time shim does not reach (static programs, most Go binaries), and keeps
// them in step with the shim's state: every tick it looks for processes
// it has not seen (a process started later is patched within a tick),
// publishes changes to the ones it patched, and restores them all when
// the fault stops.
type vdsoDriver struct {
	procRoot string
	self     int
	patched  map[int]*vdso.Patched
	// failed holds why a process could not be patched (not tried again
	// until it execs or its pid is reused).
	failed map[procKey]string
	params vdso.Params
	on     bool
}

// procKey is a process as it is: pid and start time, so that a reused pid
// is a new process.
type procKey struct {
	pid   int
	start string
}

func newVDSODriver(procRoot string) *vdsoDriver {
	return &vdsoDriver{procRoot: procRoot, self: os.Getpid(), patched: map[int]*vdso.Patched{}, failed: map[procKey]string{}}
}

// set publishes the fault to every patched process, or restores them all
// when it goes off.
func (v *vdsoDriver) set(on bool, p vdso.Params) error {
	v.on, v.params = on, p
	if !on {
		return v.restoreAll()
	}
	var errs []error
	for pid, pt := range v.patched {
		if err := pt.Update(p); err != nil {
			errs = append(errs, err)
			delete(v.patched, pid) // exited or exec'd: the next scan sees it again
		}
	}
	return errors.Join(errs...)
}

// scan patches the processes not seen yet that the shim does not reach.
func (v *vdsoDriver) scan(ctx context.Context, procs []clockfault.Process) {
	if !v.on {
		return
	}
	live := map[int]bool{}
	for _, p := range procs {
		live[p.PID] = true
		if p.Affected || p.PID == v.self || v.patched[p.PID] != nil || isPause(p) {
			continue
		}
		key := procKey{p.PID, startTime(v.procRoot, p.PID)}
		if _, ok := v.failed[key]; ok {
			continue
		}
		start := time.Now()
		pt, err := vdso.Patch(p.PID, v.params)
		if err != nil {
			v.failed[key] = "vDSO patch failed: " + err.Error()
			logf.FromContext(ctx).Info("clock: cannot patch the vDSO", "pid", p.PID, "comm", p.Comm, "error", err.Error())
			continue
		}
		v.patched[p.PID] = pt
		logf.FromContext(ctx).Info("clock: vDSO patched", "pid", p.PID, "comm", p.Comm, "took", time.Since(start))
	}
	for pid, pt := range v.patched {
		if !live[pid] || !pt.Alive() {
			delete(v.patched, pid)
		}
	}
	for k := range v.failed {
		if !live[k.pid] {
			delete(v.failed, k)
		}
	}
}

// methods fills in which method reaches each process.
func (v *vdsoDriver) methods(procs []clockfault.Process) {
	for i := range procs {
		p := &procs[i]
		switch {
		case p.Affected:
			p.Method = "shim"
		case v.patched[p.PID] != nil:
			p.Method, p.Affected, p.Reason = "vdso", true, ""
		default:
			p.Method = "none"
			if why, ok := v.failed[procKey{p.PID, startTime(v.procRoot, p.PID)}]; ok {
				p.Reason += "; " + why
			}
		}
	}
}

func (v *vdsoDriver) restoreAll() error {
	var errs []error
	for pid, pt := range v.patched {
		if err := pt.Restore(); err != nil && pt.Alive() {
			errs = append(errs, err)
		}
		delete(v.patched, pid)
	}
	clear(v.failed)
	return errors.Join(errs...)
}

// isPause: the pod's sandbox process holds the namespaces and reads no
// clock worth faking.
func isPause(p clockfault.Process) bool { return p.Comm == "pause" }

func startTime(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	// The command may hold spaces and parentheses: fields count from the
	// last ")".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}
