package localnode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Preflight names what this machine lacks to run the node, with the command
// that fixes each, before anything is started.
func Preflight(assets string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, mounts, cgroups): run as root, e.g. sudo make run")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
		"kubectl", "containerd", "containerd-shim-runc-v2", "ctr", "coredns"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			missing = append(missing, fmt.Sprintf("%s in %s: run hack/build-control-plane.sh", b, assets))
		}
	}
	tools := map[string]string{"ip": "iproute2", "nsenter": "util-linux", "iptables": "iptables", "runc": "runc", "mount": "mount"}
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil && !exists("/usr/sbin/"+tool) {
			missing = append(missing, fmt.Sprintf("%s: apt-get install %s", tool, pkg))
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if !exists("/usr/lib/cni/" + p) {
			missing = append(missing, "CNI plugin /usr/lib/cni/"+p+": apt-get install containernetworking-plugins")
			break
		}
	}
	cg, _ := os.ReadFile("/proc/cgroups")
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "cpuset"} {
		if !cgroupEnabled(string(cg), c) {
			missing = append(missing, "cgroup controller "+c+": enable it on the kernel command line (cgroup_enable="+c+")")
		}
	}
	// containerd's overlayfs snapshotter; the agent's rules need nf_tables
	// (iptables-nft) and the delay engine nfnetlink_queue.
	fsTable, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(fsTable), "\toverlay\n") {
		_ = exec.Command("modprobe", "overlay").Run()
		if b, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(b), "\toverlay\n") {
			missing = append(missing, "kernel module overlay (containerd's snapshotter): modprobe overlay")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w; missing:\n  - %s", errMissing, strings.Join(missing, "\n  - "))
	}
	return nil
}

func cgroupEnabled(table, name string) bool {
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == name {
			return f[3] == "1"
		}
	}
	return false
}
