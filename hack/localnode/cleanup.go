package localnode

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// recordPath is where a run says what it owns, so that the next run can
// remove it after a crash or a kill -9. /run is a tmpfs: a reboot clears it,
// as it clears everything the record points at.
const recordPath = "/run/faultline-node/run.json"

// The sysctls kubelet changes on the host (it sets them rather than refuse
// to start); a run saves and restores them.
var kubeletSysctls = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"}

type record struct {
	StateDir string            `json:"stateDir"`
	PIDs     []int             `json:"pids"`
	Sysctls  map[string]string `json:"sysctls"`
}

func readRecord() (*record, error) {
	b, err := os.ReadFile(recordPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordPath, err)
	}
	return &r, nil
}

func writeRecord(r *record) error {
	if err := os.MkdirAll(filepath.Dir(recordPath), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	return os.WriteFile(recordPath, b, 0o600)
}

func saveSysctls() map[string]string {
	m := map[string]string{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			m[k] = strings.TrimSpace(string(b))
		}
	}
	return m
}

// Clean removes whatever a run recorded in /run/faultline-node: its
// processes and the pods' (by their kubepods cgroups), mounts under its
// state directory, the cgroups, the node's network namespace and links, and
// restores kubelet's sysctls. It is what Stop ends with and what Start does
// first; it is safe when nothing is left.
func Clean() error {
	r, err := readRecord()
	if err != nil {
		return err
	}
	if r == nil {
		r = &record{}
	}
	var errs []error
	for _, pid := range r.PIDs {
		if isOurs(pid, r.StateDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	killCgroupProcs()
	if r.StateDir != "" {
		killShims(r.StateDir) // containerd shims outlive containerd
		errs = append(errs, unmountUnder(r.StateDir)...)
	}
	errs = append(errs, removeCgroups()...)
	errs = append(errs, teardownNetwork()...)
	for k, v := range r.Sysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	removeLogLinks(r.StateDir)
	removeRuntimeLeftovers()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleaning up the last node run: %w", err)
	}
	return os.RemoveAll(filepath.Dir(recordPath))
}

// isOurs guards against a recycled PID: the process must still be one of the
// node's binaries (its command line names the state directory or the node
// namespace).
func isOurs(pid int, stateDir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	cmd := string(b)
	return (stateDir != "" && strings.Contains(cmd, stateDir)) || strings.Contains(cmd, "/var/run/netns/"+nodeNetNS)
}

// killShims kills the runc shims of the run's containerd: their command
// line names its socket under the state directory. Only shims: the command
// that started the run (go run, a test binary) may name the directory too.
func killShims(stateDir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		if strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && strings.Contains(string(b), stateDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cgroupRoots are the mounted hierarchies (v1 controllers, name=systemd, and
// the v2 one) where kubelet's cgroupfs driver makes kubepods.
func cgroupRoots() []string {
	var roots []string
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && (fields[2] == "cgroup" || fields[2] == "cgroup2") {
			roots = append(roots, fields[1])
		}
	}
	return roots
}

// killCgroupProcs kills every process in a kubepods cgroup: the pods'
// containers, which outlive a killed kubelet and containerd.
func killCgroupProcs() {
	for i := 0; i < 20; i++ {
		found := false
		for _, root := range cgroupRoots() {
			_ = filepath.WalkDir(filepath.Join(root, "kubepods"), func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						found = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				return nil
			})
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func removeCgroups() []error {
	var errs []error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, "kubepods")
		if !exists(top) {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errs
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) []error {
	var errs []error
	for i := 0; i < 3; i++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		errs = nil
		for _, m := range mps {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("umount %s: %w", m, err))
			}
		}
	}
	return errs
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// removeLogLinks removes kubelet's /var/log/containers links into the run's
// pod log directory (kubelet writes them there whatever podLogsDir says).
func removeLogLinks(stateDir string) {
	if stateDir == "" {
		return
	}
	entries, _ := os.ReadDir("/var/log/containers")
	for _, e := range entries {
		p := filepath.Join("/var/log/containers", e.Name())
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, stateDir) {
			_ = os.Remove(p)
		}
	}
}

// removeRuntimeLeftovers removes what containerd and the CNI plugins keep in
// host-global paths whatever their configured roots: libcni's cached results
// for the "faultline" network (and the loopback entries of the same
// sandboxes), and, when no system containerd is running here, the runc
// state and shim sockets under /run/containerd that a killed run leaves.
func removeRuntimeLeftovers() {
	const results = "/var/lib/cni/results"
	entries, _ := os.ReadDir(results)
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "faultline-")
		if !ok {
			continue
		}
		id = strings.TrimSuffix(id, "-eth0")
		_ = os.Remove(filepath.Join(results, e.Name()))
		_ = os.Remove(filepath.Join(results, "cni-loopback-"+id+"-lo"))
	}
	if exists("/run/containerd/containerd.sock") {
		return // someone else's containerd: its state is not ours to judge
	}
	for _, d := range []string{"/run/containerd/runc/k8s.io", "/run/containerd/s"} {
		_ = os.RemoveAll(d)
	}
}
