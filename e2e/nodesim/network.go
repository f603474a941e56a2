package nodesim

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// Network is the test "cluster": a network namespace holding a bridge, and
// one namespace per pod joined to it by a veth pair. Addresses come from
// 10.88.0.0/24 and exist only inside namespaces the test creates.
type Network struct {
	// Name prefixes every namespace and link, so that leftovers of a
	// crashed run are recognisable (and removed by Close).
	Name string

	mu   sync.Mutex
	next int
}

// ClusterNS is the namespace clients measure from; its bridge is 10.88.0.1.
func (n *Network) ClusterNS() string { return n.Name + "-c" }

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Setup creates the cluster namespace and its bridge.
func (n *Network) Setup() error {
	n.Close()
	c := n.ClusterNS()
	for _, cmd := range [][]string{
		{"ip", "netns", "add", c},
		{"ip", "-n", c, "link", "set", "lo", "up"},
		{"ip", "-n", c, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", c, "addr", "add", "10.88.0.1/24", "dev", "br0"},
		{"ip", "-n", c, "link", "set", "br0", "up"},
	} {
		if err := run(cmd...); err != nil {
			return err
		}
	}
	return nil
}

// AddPod creates a pod namespace with eth0 on the bridge; it returns the
// namespace and the pod's IP.
func (n *Network) AddPod() (string, string, error) {
	n.mu.Lock()
	n.next++
	i := n.next
	n.mu.Unlock()
	if i > 240 {
		return "", "", fmt.Errorf("network %s: out of addresses", n.Name)
	}
	ns, ip, host := fmt.Sprintf("%s-p%d", n.Name, i), fmt.Sprintf("10.88.0.%d", 10+i), fmt.Sprintf("%sv%d", n.Name, i)
	for _, cmd := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", host, "netns", n.ClusterNS()},
		{"ip", "-n", n.ClusterNS(), "link", "set", host, "master", "br0", "up"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", "10.88.0.1"},
	} {
		if err := run(cmd...); err != nil {
			_ = run("ip", "netns", "del", ns)
			return "", "", err
		}
	}
	return ns, ip, nil
}

// ConnectHost joins the host to the cluster namespace by a veth pair
// (10.88.1.1 on the host, 10.88.1.2 in the cluster namespace), for servers
// run in the cluster namespace that host processes must reach.
func (n *Network) ConnectHost() (string, error) {
	host := n.Name + "h"
	for _, cmd := range [][]string{
		{"ip", "link", "add", host, "type", "veth", "peer", "name", "host0", "netns", n.ClusterNS()},
		{"ip", "addr", "add", "10.88.1.1/30", "dev", host},
		{"ip", "link", "set", host, "up"},
		{"ip", "-n", n.ClusterNS(), "addr", "add", "10.88.1.2/30", "dev", "host0"},
		{"ip", "-n", n.ClusterNS(), "link", "set", "host0", "up"},
	} {
		if err := run(cmd...); err != nil {
			return "", err
		}
	}
	return "10.88.1.2", nil
}

// RemovePod deletes a pod namespace (its veth pair goes with it).
func (n *Network) RemovePod(ns string) error { return run("ip", "netns", "del", ns) }

// Close removes every namespace with the network's prefix (and with the
// cluster namespace, the host's veth pair).
func (n *Network) Close() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, n.Name+"-") {
			_ = run("ip", "netns", "del", name)
		}
	}
}
