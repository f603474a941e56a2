package localnode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The names and addresses the node owns. Fixed, so that a run after a crash
// finds what the last one left; the ranges are private ones no other tool
// here uses.
const (
	NodeName    = "faultline-node"
	nodeNetNS   = "faultline-node"
	hostVeth    = "flhost0"
	nodeVeth    = "flnode0"
	bridge      = "flbr0"
	HostIP      = "10.213.0.1" // the host's end: the API server listens here
	NodeIP      = "10.213.0.2" // kubelet, kube-proxy, CoreDNS
	PodCIDR     = "10.214.0.0/24"
	ServiceCIDR = "10.215.0.0/24"
	APIServerIP = "10.215.0.1"  // the kubernetes Service
	DNSIP       = "10.215.0.10" // the kube-dns Service
	apiPort     = 6443

	// Pods are dual-stack: an IPv6 address beside the IPv4 one (Services
	// stay IPv4), reachable from the host through the node.
	HostIP6  = "fd00:213::1"
	NodeIP6  = "fd00:213::2"
	PodCIDR6 = "fd00:214::/64"
)

// run runs a command, returning its output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork makes the node's namespace and its link to the host. The
// host gets routes to the pod and Service ranges through the node, so that
// the API server reaches webhook pods and tests reach pod IPs; nothing is
// added to the host's iptables.
func setupNetwork() error {
	steps := [][]string{
		{"ip", "netns", "add", nodeNetNS},
		{"ip", "link", "add", hostVeth, "type", "veth", "peer", "name", nodeVeth, "netns", nodeNetNS},
		{"ip", "addr", "add", HostIP + "/30", "dev", hostVeth},
		{"ip", "link", "set", hostVeth, "up"},
		{"ip", "-n", nodeNetNS, "addr", "add", NodeIP + "/30", "dev", nodeVeth},
		{"ip", "-n", nodeNetNS, "link", "set", nodeVeth, "up"},
		{"ip", "-n", nodeNetNS, "link", "set", "lo", "up"},
		{"ip", "-n", nodeNetNS, "route", "add", "default", "via", HostIP},
		{"ip", "route", "add", PodCIDR, "via", NodeIP, "dev", hostVeth},
		{"ip", "route", "add", ServiceCIDR, "via", NodeIP, "dev", hostVeth},
		{"ip", "-6", "addr", "add", HostIP6 + "/64", "dev", hostVeth, "nodad"},
		{"ip", "-n", nodeNetNS, "-6", "addr", "add", NodeIP6 + "/64", "dev", nodeVeth, "nodad"},
		{"ip", "-n", nodeNetNS, "-6", "route", "add", "default", "via", HostIP6},
		{"ip", "-6", "route", "add", PodCIDR6, "via", NodeIP6, "dev", hostVeth},
		// The node routes between pods, the host and Services; these are
		// the node namespace's own sysctls, not the host's.
		{"ip", "netns", "exec", nodeNetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", nodeNetNS, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"},
		{"ip", "netns", "exec", nodeNetNS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("node network: %w", err)
		}
	}
	// kube-proxy's Service rules see bridged traffic only with this module.
	_ = run("modprobe", "br_netfilter")
	return nil
}

// inNode is the argv prefix that runs a command in the node's network
// namespace only. Not `ip netns exec`: that also gives the command its own
// mount namespace, and kubelet's volume mounts must be seen by containerd.
func inNode(argv ...string) []string {
	return append([]string{"nsenter", "--net=/var/run/netns/" + nodeNetNS, "--"}, argv...)
}

// teardownNetwork deletes the namespace (with the bridge, kube-proxy's rules
// and the node's end of the veth) and the host's end, which takes its routes.
// Pod namespaces with addresses in the pod range go too: containerd removes
// them when pods are deleted, but not after a crash.
func teardownNetwork() []error {
	var errs []error
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "cni-") {
			continue
		}
		out, _ := exec.Command("ip", "-n", name, "-4", "-o", "addr").Output()
		if strings.Contains(string(out), " "+strings.TrimSuffix(PodCIDR, "0/24")) {
			_ = run("umount", filepath.Join("/var/run/netns", name))
			if err := run("ip", "netns", "delete", name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if exists("/var/run/netns/" + nodeNetNS) {
		if err := run("ip", "netns", "delete", nodeNetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if err := exec.Command("ip", "link", "show", hostVeth).Run(); err == nil {
		if err := run("ip", "link", "delete", hostVeth); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
