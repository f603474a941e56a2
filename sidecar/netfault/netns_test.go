package netfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vishvananda/netlink"
	nsh "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/dnsfault"
)

// These tests build two network namespaces joined by a veth pair
// (pod 10.199.N.1 <-> peer 10.199.N.2), program real iptables in "pod" and
// measure from it. Helpers run inside a namespace by re-executing this test
// binary under `ip netns exec` (see TestMain).

const helperEnv = "FAULTLINE_NETTEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[len(os.Args)-2:]))
	}
	os.Exit(m.Run())
}

type netns struct {
	pod, peer     string
	podIP, peerIP string
	// podIP6 and peerIP6: the namespaces are dual-stack.
	podIP6, peerIP6 string
	runner          Runner
	engine          *DelayEngine // the queues of the last apply, if any
}

// NetnsRunner runs commands inside a named network namespace.
type NetnsRunner struct {
	NS     string
	Runner Runner
}

func (n NetnsRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return n.Runner.Run(ctx, stdin, "ip", append([]string{"netns", "exec", n.NS, name}, args...)...)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: network-namespace tests need root (ip netns, veth, iptables); run make test as root")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install iproute2 and iptables (.ci/run does)", bin)
		}
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	requireRoot(t)
	id := rand.IntN(200) + 20
	n := &netns{
		pod: fmt.Sprintf("fl-pod-%d-%d", os.Getpid(), id), peer: fmt.Sprintf("fl-peer-%d-%d", os.Getpid(), id),
		podIP: fmt.Sprintf("10.199.%d.1", id), peerIP: fmt.Sprintf("10.199.%d.2", id),
		podIP6: fmt.Sprintf("fd00:199:%x::1", id), peerIP6: fmt.Sprintf("fd00:199:%x::2", id),
	}
	sh(t, "ip", "netns", "add", n.pod)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.pod).Run() })
	sh(t, "ip", "netns", "add", n.peer)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.peer).Run() })
	sh(t, "ip", "link", "add", "flv0", "netns", n.pod, "type", "veth", "peer", "name", "flv1", "netns", n.peer)
	for _, c := range [][]string{
		{n.pod, "ip", "addr", "add", n.podIP + "/24", "dev", "flv0"},
		{n.pod, "ip", "addr", "add", n.podIP6 + "/64", "dev", "flv0", "nodad"},
		{n.peer, "ip", "addr", "add", n.peerIP6 + "/64", "dev", "flv1", "nodad"},
		{n.pod, "ip", "link", "set", "flv0", "up"},
		{n.pod, "ip", "link", "set", "lo", "up"},
		{n.peer, "ip", "addr", "add", n.peerIP + "/24", "dev", "flv1"},
		{n.peer, "ip", "link", "set", "flv1", "up"},
		{n.peer, "ip", "link", "set", "lo", "up"},
	} {
		sh(t, append([]string{"ip", "netns", "exec"}, c...)...)
	}
	ks, err := NewKernelSwitch("/var/run/netns/" + n.pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ks.Close)
	// As the agent runs: commands in the pod's namespace, tc through
	// netlink, jumps gated by the dead man's switch.
	n.runner = Gated{Runner: NewTCNetlink(NetnsRunner{NS: n.pod, Runner: Exec{}}, ks), KernelSwitch: ks}
	return n
}

// in runs this test binary as a helper inside ns.
func (n *netns) helperCmd(ns, mode string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0], "-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

func (n *netns) serve(t *testing.T, ports ...int) {
	t.Helper()
	for _, p := range ports {
		cmd := n.helperCmd(n.peer, "serve", "0", strconv.Itoa(p))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	for _, p := range ports {
		waitListening(t, n.peer, p, "tcp", "udp")
	}
}

// dialPolled dials a UDP peer and returns a non-blocking read: busy-polling
// the socket, because a parked goroutine wakes up late on this VM, which
// would be counted as delay the fault never added.
func dialPolled(addr string) (net.Conn, func([]byte) (int, bool), error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	raw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	read := func(buf []byte) (n int, ok bool) {
		_ = raw.Read(func(fd uintptr) bool {
			k, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			n, ok = k, err == nil
			return true
		})
		return n, ok
	}
	return c, read, nil
}

// waitListening waits until sockets of every proto listen on port in the
// network namespace ns (the helpers start asynchronously), or fails.
func waitListening(t *testing.T, ns string, port int, protos ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, proto := range protos {
		flags := map[string]string{"tcp": "-Hltn", "udp": "-Hlun"}[proto]
		for {
			out, err := exec.Command("ip", "netns", "exec", ns, "ss", flags, "sport", "=", ":"+strconv.Itoa(port)).Output()
			if err == nil && len(bytes.TrimSpace(out)) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s port %d in %s after 10s", proto, port, ns)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (n *netns) fromPod(t *testing.T, mode, addr string) string {
	t.Helper()
	out, err := n.helperCmd(n.pod, mode, "0", addr).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", mode, addr, err)
	}
	return strings.TrimSpace(string(out))
}

func (n *netns) apply(t *testing.T, specYAML string, exempt ...int32) {
	t.Helper()
	spec, errs := v1alpha1.ParseFaultSpec(specYAML, nil)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	// Dual-stack, as the agent finds these namespaces: every test writes
	// both families.
	plan, err := Build(spec, Options{Exempt: Exemptions{Ports: exempt}, Interface: "flv0", Caps: Capabilities{NFQueue: true, IPv6: true}})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody keeps these faults alive (the agent would, every second): give
	// them longer than any test takes. TestFaultsStopWhenNobodyKeepsThemAlive
	// is about the switch itself.
	plan.AliveTTL = 10 * time.Minute
	if n.engine != nil {
		n.engine.Stop()
		n.engine = nil
	}
	if len(plan.Delays) > 0 {
		// As the agent does: the queues are read before rules send to them.
		nsf, err := os.Open("/var/run/netns/" + n.pod)
		if err != nil {
			t.Fatal(err)
		}
		defer nsf.Close()
		if n.engine, err = StartDelay(context.Background(), plan.Delays, int(nsf.Fd())); err != nil {
			t.Fatal(err)
		}
		eng := n.engine
		t.Cleanup(eng.Stop)
	}
	if err := Apply(context.Background(), n.runner, plan); err != nil {
		t.Fatal(err)
	}
}

// delayPlan builds a delay on the UDP replies from the peer's port and
// opens the pod's namespace for the engine (closed with the test).
func (n *netns) delayPlan(t *testing.T, delay string, port int) (Plan, int) {
	t.Helper()
	spec, _ := v1alpha1.ParseFaultSpec(fmt.Sprintf("network: [{delay: %s, to: ['%s:%d/udp']}]", delay, n.peerIP, port), nil)
	plan, err := Build(spec, Options{Caps: Capabilities{NFQueue: true}})
	if err != nil {
		t.Fatal(err)
	}
	plan.AliveTTL = 10 * time.Minute // nobody keeps it alive here
	nsf, err := os.Open("/var/run/netns/" + n.pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsf.Close() })
	return plan, int(nsf.Fd())
}

func (n *netns) save6(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.pod, "ip6tables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("ip6tables-save: %v\n%s", err, out)
	}
	return string(out)
}

func (n *netns) save(t *testing.T) string {
	t.Helper()
	out, err := n.runner.Run(context.Background(), nil, "iptables", "-t", "filter", "-S")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPartitionAndResetInRealNamespaces(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432, 8080)
	ep := func(port int) string { return net.JoinHostPort(n.peerIP, strconv.Itoa(port)) }
	if got := n.fromPod(t, "connect", ep(5432)); got != "ok" {
		t.Fatalf("before faults, connect = %s", got)
	}

	t.Run("a partition of one port times out silently and leaves other ports working", func(t *testing.T) {
		n.apply(t, fmt.Sprintf("network: [{partition: true, to: ['%s:5432']}]", n.peerIP))
		if got := n.fromPod(t, "connect", ep(5432)); got != "timeout" {
			t.Errorf("connect to the partitioned port = %s, want timeout (not EPERM, not refused)", got)
		}
		if got := n.fromPod(t, "connect", ep(8080)); got != "ok" {
			t.Errorf("connect to another port = %s, want ok", got)
		}
	})
	t.Run("a reset rule refuses connections at once", func(t *testing.T) {
		n.apply(t, fmt.Sprintf("network: [{reset: true, to: ['%s:5432']}]", n.peerIP))
		start := time.Now()
		if got := n.fromPod(t, "connect", ep(5432)); got != "refused" {
			t.Errorf("connect = %s, want refused", got)
		}
		t.Logf("refused in %s (including process start)", time.Since(start).Round(time.Millisecond))
	})
	t.Run("removing restores every connection", func(t *testing.T) {
		if err := Remove(context.Background(), n.runner, "flv0"); err != nil {
			t.Fatal(err)
		}
		if got := n.fromPod(t, "connect", ep(5432)); got != "ok" {
			t.Errorf("after remove, connect = %s", got)
		}
		if s := n.save(t); strings.Contains(s, "FAULTLINE") {
			t.Errorf("rules left after remove:\n%s", s)
		}
	})
}

// Remove frees traffic before it deletes a single rule: emptying the dead
// man's switch's sets takes microseconds, while an nftables transaction that
// deletes anything takes 10-20 ms in the kernel (issue 15 item 5).
func TestRemoveFreesTrafficBeforeDeletingRules(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432)
	v4, v6 := net.JoinHostPort(n.peerIP, "5432"), net.JoinHostPort(n.peerIP6, "5432")
	n.apply(t, fmt.Sprintf("network: [{partition: true, to: ['%s', '%s']}]", v4, v6))
	for _, ep := range []string{v4, v6} {
		if got := n.fromPod(t, "connect", ep); got != "timeout" {
			t.Fatalf("partitioned %s: connect = %s, want timeout", ep, got)
		}
	}
	start := time.Now()
	if err := n.runner.(Switch).Off(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, ep := range []string{v4, v6} {
		if got := n.fromPod(t, "connect", ep); got != "ok" {
			t.Errorf("after Off, connect %s = %s, want ok", ep, got)
		}
	}
	if !strings.Contains(n.save(t), "-j DROP") || !strings.Contains(n.save6(t), "-j DROP") {
		t.Fatal("the rules were deleted: the test must show they stop matching first")
	}
	t.Logf("sets emptied in %s: both families' traffic flows with every rule still in place", took.Round(time.Microsecond))
	if err := Remove(context.Background(), n.runner, ""); err != nil {
		t.Fatal(err)
	}
}

// A dual-stack pod: one builder writes both families, each target lands in
// its own family's table, a rule of any address reaches both, and removal
// leaves nothing in either (issue 15 item 1).
func TestDualStackFaultsHoldInBothFamilies(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432, 8080)
	v4 := func(port int) string { return net.JoinHostPort(n.peerIP, strconv.Itoa(port)) }
	v6 := func(port int) string { return net.JoinHostPort(n.peerIP6, strconv.Itoa(port)) }
	if got := n.fromPod(t, "connect", v6(5432)); got != "ok" {
		t.Fatalf("before faults, IPv6 connect = %s", got)
	}
	t.Run("an IPv6 partition cuts that address and port only", func(t *testing.T) {
		n.apply(t, fmt.Sprintf("network: [{partition: true, to: ['%s']}]", v6(5432)))
		for _, c := range []struct{ ep, want string }{{v6(5432), "timeout"}, {v6(8080), "ok"}, {v4(5432), "ok"}} {
			if got := n.fromPod(t, "connect", c.ep); got != c.want {
				t.Errorf("connect %s = %s, want %s", c.ep, got, c.want)
			}
		}
		if s := n.save6(t); !strings.Contains(s, "--match-set "+AliveSet6+" dst") {
			t.Errorf("the IPv6 jumps are not behind the dead man's switch:\n%s", s)
		}
	})
	t.Run("a rule of any address reaches both families", func(t *testing.T) {
		n.apply(t, "network: [{reset: true, to: [':5432']}]")
		for _, ep := range []string{v4(5432), v6(5432)} {
			if got := n.fromPod(t, "connect", ep); got != "refused" {
				t.Errorf("connect %s = %s, want refused", ep, got)
			}
		}
		if got := n.fromPod(t, "connect", v6(8080)); got != "ok" {
			t.Errorf("connect %s = %s, want ok", v6(8080), got)
		}
	})
	t.Run("a delay of any address adds to IPv6 round trips as to IPv4's", func(t *testing.T) {
		n.apply(t, "network: [{delay: 50ms}]")
		for _, ep := range []string{v4(8080), v6(8080)} {
			var p50, p99 float64
			if _, err := fmt.Sscanf(n.fromPod(t, "udp-rtt", ep), "p50 %f p99 %f", &p50, &p99); err != nil {
				t.Fatal(err)
			}
			t.Logf("delay 50ms to any address: %s round trip p50 %.2f ms, p99 %.2f ms", ep, p50, p99)
			if p50 < 49 || p50 > 56 {
				t.Errorf("%s: p50 %.2f ms, want 50 ms (+6 ms at most for this VM)", ep, p50)
			}
		}
	})
	t.Run("bandwidth to an IPv6 destination is shaped, IPv4 to the same port is not", func(t *testing.T) {
		n.apply(t, fmt.Sprintf("network: [{bandwidth: 10Mbit, to: ['[%s]:7011/tcp']}]", n.peerIP6))
		shaped := n.goodput(t, n.pod, n.peer, n.peerIP6, 7011)
		other := n.goodput(t, n.pod, n.peer, n.peerIP, 7011)
		// IPv6's header is 20 bytes longer: 1428 payload bytes per frame.
		want := 10 * 1428.0 / 1514.0
		t.Logf("egress 10Mbit to IPv6 requested: %.2f Mbit/s goodput; IPv4 to the same port: %.0f Mbit/s", shaped, other)
		if shaped < want*0.95 || shaped > want*1.05 {
			t.Errorf("IPv6 goodput %.2f Mbit/s, want %.2f ± 5%%", shaped, want)
		}
		if other < 50 {
			t.Errorf("IPv4 to the same port got %.1f Mbit/s: the IPv6 limit leaked into IPv4", other)
		}
	})
	t.Run("removing leaves nothing in either family", func(t *testing.T) {
		if err := Remove(context.Background(), n.runner, "flv0"); err != nil {
			t.Fatal(err)
		}
		if got := n.fromPod(t, "connect", v6(5432)); got != "ok" {
			t.Errorf("after remove, IPv6 connect = %s", got)
		}
		if s := n.save(t) + n.save6(t); strings.Contains(s, "FAULTLINE") {
			t.Errorf("rules left after remove:\n%s", s)
		}
		ns, err := nsh.GetFromPath("/var/run/netns/" + n.pod)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		sets, err := h.IpsetListAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range sets {
			if strings.HasPrefix(set.SetName, "faultline") {
				t.Errorf("ipset %s left after remove", set.SetName)
			}
		}
	})
}

// The dead man's switch: when nobody keeps the faults alive (the agent died
// and was not restarted), they stop within the TTL although every rule is
// still there; a keep-alive brings them back.
func TestFaultsStopWhenNobodyKeepsThemAlive(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432)
	ep := net.JoinHostPort(n.peerIP, "5432")
	spec, _ := v1alpha1.ParseFaultSpec(fmt.Sprintf("network: [{partition: true, to: ['%s']}]", ep), nil)
	plan, err := Build(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan.AliveTTL = 2 * time.Second
	armed := time.Now()
	if err := Apply(context.Background(), n.runner, plan); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPod(t, "connect", ep); got != "timeout" {
		t.Fatalf("with the switch armed, connect = %s, want timeout", got)
	}
	var back time.Duration
	for {
		if n.fromPod(t, "connect", ep) == "ok" {
			back = time.Since(armed)
			break
		}
		if time.Since(armed) > 10*time.Second {
			t.Fatal("the partition outlived its TTL by 8 s")
		}
	}
	if !strings.Contains(n.save(t), "-j DROP") {
		t.Fatal("the rules were removed: the test must show they stop matching")
	}
	if err := KeepAlive(context.Background(), n.runner, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := n.fromPod(t, "connect", ep); got != "timeout" {
		t.Errorf("after a keep-alive, connect = %s, want timeout", got)
	}
	t.Logf("TTL 2 s: traffic flowed again %s after the last arm, with the rules in place", back.Round(100*time.Millisecond))
	if err := Remove(context.Background(), n.runner, ""); err != nil {
		t.Fatal(err)
	}
	if out, _ := n.runner.Run(context.Background(), nil, "iptables-save"); strings.Contains(string(out), "FAULTLINE") || strings.Contains(string(out), AliveSet) {
		t.Errorf("left after remove:\n%s", out)
	}
}

// What netem offers, without netem, in the delay engine: jitter shapes,
// correlation, reorder and corrupt, each measured against the request over
// 400 real round trips.
func TestTheEngineShapesJitterReordersCorruptsAndDuplicates(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 7000)
	samples := func(spec string) (rtt []float64, lost, bad int) {
		t.Helper()
		n.apply(t, fmt.Sprintf("network: [{%s, to: ['%s:7000/udp']}]", spec, n.peerIP))
		for _, f := range strings.Fields(n.fromPod(t, "udp-samples", net.JoinHostPort(n.peerIP, "7000"))) {
			v, _ := strconv.ParseFloat(f, 64)
			switch v {
			case -1:
				lost++
			case -2:
				bad++
			default:
				rtt = append(rtt, v/1000)
			}
		}
		return rtt, lost, bad
	}
	stats := func(xs []float64) (mean, sd, lag1 float64) {
		for _, x := range xs {
			mean += x
		}
		mean /= float64(len(xs))
		var cov float64
		for i, x := range xs {
			sd += (x - mean) * (x - mean)
			if i > 0 {
				cov += (x - mean) * (xs[i-1] - mean)
			}
		}
		return mean, math.Sqrt(sd / float64(len(xs))), cov / sd
	}
	t.Run("normal jitter has the requested spread around the delay", func(t *testing.T) {
		rtt, _, _ := samples("delay: 20ms, jitter: 5ms, distribution: normal")
		mean, sd, lag := stats(rtt)
		t.Logf("delay 20ms, jitter 5ms normal: mean %.2fms, sd %.2fms, lag-1 correlation %.2f over %d", mean, sd, lag, len(rtt))
		if math.Abs(mean-20) > 1.5 || sd < 4 || sd > 6 {
			t.Errorf("mean %.2fms sd %.2fms, want 20 ± 1.5 and 5 ± 1", mean, sd)
		}
	})
	t.Run("correlation ties each delay to the one before", func(t *testing.T) {
		rtt, _, _ := samples("delay: 20ms, jitter: 8ms, correlation: 75%")
		_, _, lag := stats(rtt)
		t.Logf("correlation 75%%: lag-1 correlation of the RTTs %.2f", lag)
		if lag < 0.4 {
			t.Errorf("lag-1 correlation %.2f, want clearly positive (≥ 0.4) for 75%%", lag)
		}
	})
	t.Run("reorder sends its share without the delay", func(t *testing.T) {
		rtt, _, _ := samples("delay: 20ms, reorder: 25%")
		fast := 0
		for _, r := range rtt {
			if r < 10 {
				fast++
			}
		}
		share := float64(fast) / float64(len(rtt))
		t.Logf("reorder 25%%: %.1f%% of %d round trips skipped the 20ms delay", 100*share, len(rtt))
		// σ at 25% over 400 is 2.2 points: ±8 is over 3σ.
		if share < 0.17 || share > 0.33 {
			t.Errorf("reordered share %.1f%%, want 25 ± 8", 100*share)
		}
	})
	t.Run("a gap holds gap-1 packets between reordered ones, as netem's", func(t *testing.T) {
		rtt, _, _ := samples("delay: 20ms, reorder: 50%, gap: 4")
		var fast []int
		for i, r := range rtt {
			if r < 10 {
				fast = append(fast, i)
			}
		}
		closest := len(rtt)
		for i := 1; i < len(fast); i++ {
			closest = min(closest, fast[i]-fast[i-1])
		}
		share := float64(len(fast)) / float64(len(rtt))
		// Each cycle is 3 held packets, then tries at 50% until one goes
		// at once: 1 of (3 + 2) on average, 20%; σ over 400 is 2 points.
		t.Logf("reorder 50%%, gap 4: %.1f%% of %d sent at once (netem's expectation 20%%), closest two %d apart", 100*share, len(rtt), closest)
		if share < 0.13 || share > 0.27 || closest < 4 {
			t.Errorf("share %.1f%% (want 20 ± 7), closest reordered packets %d apart (want ≥ 4)", 100*share, closest)
		}
	})
	t.Run("duplicate delivers its share twice, in both families", func(t *testing.T) {
		n.apply(t, fmt.Sprintf("network: [{duplicate: 10%%, to: ['%s:7000/udp', '[%s]:7000/udp']}]", n.peerIP, n.peerIP6))
		for _, ep := range []string{net.JoinHostPort(n.peerIP, "7000"), net.JoinHostPort(n.peerIP6, "7000")} {
			var first, extra int
			if _, err := fmt.Sscanf(n.fromPod(t, "udp-dups", ep), "first %d extra %d", &first, &extra); err != nil {
				t.Fatal(err)
			}
			share := float64(extra) / float64(first)
			t.Logf("duplicate 10%% to %s: %d of %d replies arrived twice (%.1f%%); engine sent %d copies", ep, extra, first, 100*share, n.engine.Duplicated.Load())
			// σ at 10% over 1000 is 0.95 points: ±3 is over 3σ.
			if first < 990 || share < 0.07 || share > 0.13 {
				t.Errorf("%s: %d replies, %.1f%% twice; want every reply and 10 ± 3%% twice", ep, first, 100*share)
			}
		}
	})
	t.Run("corrupt damages its share of packets", func(t *testing.T) {
		_, lost, bad := samples("corrupt: 10%")
		share := float64(lost+bad) / 400
		t.Logf("corrupt 10%%: %d of 400 replies damaged (%d dropped by the UDP checksum, %d delivered altered): %.1f%%; engine corrupted %d", lost+bad, lost, bad, 100*share, n.engine.Corrupted.Load())
		if share < 0.05 || share > 0.15 {
			t.Errorf("damaged share %.1f%%, want 10 ± 5", 100*share)
		}
	})
}

// Egress faults stop what the pod sends, not only what comes back, and
// silently: one-way UDP to a target with 10% egress loss arrives 90% at the
// receiver with no send error; with an egress partition nothing arrives
// (before, both dropped only the replies: one-way traffic was untouched).
func TestEgressLossAndPartitionStopWhatGoesOut(t *testing.T) {
	n := newNetns(t)
	oneWay := func(port int) (received, sendErrs int) {
		t.Helper()
		rcv := n.helperCmd(n.peer, "udp-count", "0", strconv.Itoa(port))
		out, _ := rcv.StdoutPipe()
		if err := rcv.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if k, _ := out.Read(buf); !strings.HasPrefix(string(buf[:k]), "ready") {
			t.Fatalf("receiver: %q", buf[:k])
		}
		sent := n.fromPod(t, "udp-send", net.JoinHostPort(n.peerIP, strconv.Itoa(port)))
		if _, err := fmt.Sscanf(sent, "senderrors %d", &sendErrs); err != nil {
			t.Fatalf("sender said %q", sent)
		}
		rest, _ := io.ReadAll(out)
		_ = rcv.Wait()
		if _, err := fmt.Sscanf(strings.TrimSpace(string(rest)), "received %d", &received); err != nil {
			t.Fatalf("receiver said %q", rest)
		}
		return received, sendErrs
	}
	n.apply(t, fmt.Sprintf("network: [{loss: 10%%, to: ['%s:7100/udp']}, {partition: true, to: ['%s:7101/udp']}]", n.peerIP, n.peerIP))
	lossRcv, lossErrs := oneWay(7100)
	partRcv, partErrs := oneWay(7101)
	other, _ := oneWay(7102)
	t.Logf("egress loss 10%%: %d of 10,000 one-way datagrams arrived (%.2f%% lost), %d send errors; egress partition: %d arrived, %d send errors; another port: %d arrived; engine dropped %d",
		lossRcv, 100*(1-float64(lossRcv)/10000), lossErrs, partRcv, partErrs, other, n.engine.Dropped.Load())
	// 4 standard deviations over 10,000 (σ = 0.3 points): ±1 (3.3σ) was
	// crossed once, with the engine's own count at 11.09%, a draw and not
	// a bias (it matched the receiver to the packet).
	if lost := 1 - float64(lossRcv)/10000; lost < 0.088 || lost > 0.112 {
		t.Errorf("egress loss measured at the receiver %.2f%%, want 10%% ± 1.2 (4σ)", 100*lost)
	}
	if partRcv != 0 {
		t.Errorf("%d datagrams crossed an egress partition", partRcv)
	}
	if lossErrs+partErrs != 0 {
		t.Errorf("the sender saw %d errors: egress faults must be silent", lossErrs+partErrs)
	}
	if other != 10000 {
		t.Errorf("another port got %d of 10,000", other)
	}
}

// A namespace whose rules are in the legacy backend (an istio-init or CNI
// built on iptables-legacy): faultline detects it, writes its rules there,
// first in the chain before the other owner's ACCEPT, and the fault applies;
// clean-up finds them whatever backend holds them.
func TestTheLegacyBackendIsDetectedAndUsed(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432, 8080)
	ctx := context.Background()
	for _, chain := range []string{"OUTPUT", "INPUT"} {
		if _, err := n.runner.Run(ctx, nil, "iptables-legacy", "-A", chain, "-j", "ACCEPT"); err != nil {
			t.Fatal(err)
		}
	}
	backend, why := DetectBackend(ctx, n.runner)
	if backend != Legacy {
		t.Fatalf("backend %s (%s), want legacy", backend, why)
	}
	spec, _ := v1alpha1.ParseFaultSpec(fmt.Sprintf("network: [{partition: true, to: ['%s:5432']}]", n.peerIP), nil)
	plan, err := Build(spec, Options{Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, n.runner, plan); err != nil {
		t.Fatal(err)
	}
	out, _ := n.runner.Run(ctx, nil, "iptables-legacy", "-S", "OUTPUT")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "FAULTLINE-OUTPUT") || !strings.Contains(lines[2], "-j ACCEPT") {
		t.Errorf("want faultline's jump first in legacy OUTPUT, before the other owner's ACCEPT:\n%s", out)
	}
	if nft, _ := n.runner.Run(ctx, nil, NFT.Save()); strings.Contains(string(nft), "FAULTLINE") {
		t.Errorf("rules written to nft as well:\n%s", nft)
	}
	ep := func(port int) string { return net.JoinHostPort(n.peerIP, strconv.Itoa(port)) }
	if got := n.fromPod(t, "connect", ep(5432)); got != "timeout" {
		t.Errorf("connect to the partitioned port = %s, want timeout", got)
	}
	if got := n.fromPod(t, "connect", ep(8080)); got != "ok" {
		t.Errorf("connect to another port = %s, want ok", got)
	}
	t.Logf("counted %s -> %s; faultline's jump first in legacy OUTPUT, partition applied", why, backend)
	if err := Remove(ctx, n.runner, ""); err != nil {
		t.Fatal(err)
	}
	if out, _ := n.runner.Run(ctx, nil, Legacy.Save()); strings.Contains(string(out), "FAULTLINE") || !strings.Contains(string(out), "-A OUTPUT -j ACCEPT") {
		t.Errorf("after remove, want only the other owner's rules:\n%s", out)
	}
}

// A probe port is usually the app's own port: only the kubelet's probes
// (from the node's address or the pod's gateway) skip the faults on it,
// every other client gets them. A real node showed the difference: with the
// port exempt for everyone, a delay on checkout's :8080 added nothing.
func TestProbePortsAreExemptOnlyForTheKubelet(t *testing.T) {
	n := newNetns(t)
	other := strings.TrimSuffix(n.peerIP, ".2") + ".3"
	sh(t, "ip", "netns", "exec", n.peer, "ip", "addr", "add", other+"/24", "dev", "flv1")
	srv := n.helperCmd(n.pod, "serve", "0", "8080")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	waitListening(t, n.pod, 8080, "tcp", "udp")
	spec, errs := v1alpha1.ParseFaultSpec("network: [{partition: true, direction: both}]", nil)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	plan, err := Build(spec, Options{Interface: "flv0", Exempt: Exemptions{ProbePorts: []int32{8080},
		ProbeSources: []netip.Addr{netip.MustParseAddr(n.peerIP)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), n.runner, plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(context.Background(), n.runner, "flv0") })
	from := func(src string) string {
		cmd := n.helperCmd(n.peer, "connect", "0", net.JoinHostPort(n.podIP, "8080"))
		cmd.Env = append(cmd.Env, "FAULTLINE_NETTEST_SRC="+src)
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct{ name, src, want string }{
		{"the kubelet's probe from the node's address gets through", n.peerIP, "ok"},
		{"another client on the same port is partitioned", other, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := from(tc.src); got != tc.want {
				t.Errorf("connect from %s to the probe port = %s, want %s", tc.src, got, tc.want)
			}
		})
	}
}

func TestLossIsSilentAndWithinOnePoint(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 7000)
	const requested = 0.10
	n.apply(t, fmt.Sprintf("network: [{loss: 10%%, to: ['%s:7000/udp']}]", n.peerIP))
	out := n.fromPod(t, "udp-loss", net.JoinHostPort(n.peerIP, "7000"))
	var lost float64
	var sendErrs int
	if _, err := fmt.Sscanf(out, "loss %f senderrors %d", &lost, &sendErrs); err != nil {
		t.Fatalf("helper said %q", out)
	}
	t.Logf("requested %.1f%% loss, measured %.2f%% over 10000 round trips", requested*100, lost*100)
	// ±1.5 points is 5 standard deviations over 10000 round trips (σ = 0.3
	// points at 10%): chance alone fails it once in millions of runs, a
	// rule applied twice (19%) or not at all still fails it.
	if lost < requested-0.015 || lost > requested+0.015 {
		t.Errorf("measured loss %.2f%%, want %.0f%% ± 1.5 points", lost*100, requested*100)
	}
	if sendErrs != 0 {
		t.Errorf("%d sends failed: loss must be silent to the sender", sendErrs)
	}
}

func TestExemptionsAndOtherOwnersAreNeverTouched(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 5432)
	// Another owner's chain and rule in the pod's netns.
	sh(t, "ip", "netns", "exec", n.pod, "iptables", "-N", "OTHER-OWNER")
	sh(t, "ip", "netns", "exec", n.pod, "iptables", "-A", "OTHER-OWNER", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
	sh(t, "ip", "netns", "exec", n.pod, "iptables", "-A", "INPUT", "-j", "OTHER-OWNER")
	theirs := func() string {
		var keep []string
		for _, l := range strings.Split(n.save(t), "\n") {
			if !strings.Contains(l, "FAULTLINE") && !strings.Contains(l, "faultline") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	before := theirs()

	// A partition of everything, with the peer's port exempt as a probe port
	// would be: here the exemption is on our side's source port, so test the
	// inbound case: the peer connects to a server in the pod.
	srv := n.helperCmd(n.pod, "serve", "0", "8080")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	waitListening(t, n.pod, 8080, "tcp", "udp")
	for i := 0; i < 3; i++ {
		n.apply(t, "network: [{partition: true, direction: both}]", 8080)
	}
	out, _ := n.helperCmd(n.peer, "connect", "0", net.JoinHostPort(n.podIP, "8080")).Output()
	if got := strings.TrimSpace(string(out)); got != "ok" {
		t.Errorf("a probe-port connection into the pod = %s, want ok (exempt)", got)
	}
	if got := n.fromPod(t, "connect", net.JoinHostPort(n.peerIP, "5432")); got != "timeout" {
		t.Errorf("other traffic = %s, want timeout under a full partition", got)
	}
	s := n.save(t)
	if c := strings.Count(s, "-j FAULTLINE-INPUT"); c != 1 {
		t.Errorf("after 3 applies there are %d jumps to FAULTLINE-INPUT, want 1:\n%s", c, s)
	}
	if err := Remove(context.Background(), n.runner, "flv0"); err != nil {
		t.Fatal(err)
	}
	if after := theirs(); after != before {
		t.Errorf("another owner's rules changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if strings.Contains(n.save(t), "FAULTLINE") {
		t.Error("faultline rules left after Remove")
	}
}

// helper runs inside a namespace; args are [ignored, address-or-port].
func helper(mode string, args []string) int {
	arg := args[1]
	switch mode {
	case "udp-send":
		// One-way: 10,000 datagrams, nothing comes back.
		c, err := net.Dial("udp", arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		sendErrs := 0
		for i := 0; i < 10000; i++ {
			if _, err := c.Write([]byte(strconv.Itoa(i))); err != nil {
				sendErrs++
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		fmt.Printf("senderrors %d\n", sendErrs)
		return 0
	case "udp-count":
		pc, err := net.ListenPacket("udp", ":"+arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ready")
		n, buf := 0, make([]byte, 64)
		_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				break
			}
			n++
			_ = pc.SetReadDeadline(time.Now().Add(time.Second))
		}
		fmt.Printf("received %d\n", n)
		return 0
	case "serve":
		port := arg
		go func() {
			pc, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				return
			}
			buf := make([]byte, 2048)
			for {
				k, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:k], from)
			}
		}()
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			go func() { defer c.Close(); buf := make([]byte, 1024); _, _ = c.Read(buf) }()
		}
	case "connect":
		d := net.Dialer{Timeout: 1500 * time.Millisecond}
		if src := os.Getenv("FAULTLINE_NETTEST_SRC"); src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("tcp", arg)
		switch {
		case err == nil:
			c.Close()
			fmt.Println("ok")
		case errors.Is(err, syscall.ECONNREFUSED):
			fmt.Println("refused")
		case errors.Is(err, syscall.ECONNRESET):
			fmt.Println("reset")
		case errors.Is(err, syscall.EPERM):
			fmt.Println("eperm")
		case os.IsTimeout(err):
			fmt.Println("timeout")
		default:
			fmt.Println("error:", err)
		}
		return 0
	case "sink":
		// Accept one connection; report goodput over a window that skips
		// the first 0.5s (slow start, the TBF/HTB burst).
		ln, err := net.Listen("tcp", ":"+arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		buf := make([]byte, 64<<10)
		start := time.Now()
		var counted int64
		var from time.Time
		for time.Since(start) < 3500*time.Millisecond {
			k, err := c.Read(buf)
			if err != nil {
				break
			}
			if time.Since(start) >= 500*time.Millisecond {
				if from.IsZero() {
					from = time.Now()
				}
				counted += int64(k)
			}
		}
		fmt.Printf("mbit %f\n", float64(counted)*8/time.Since(from).Seconds()/1e6)
		return 0
	case "blast":
		c, err := net.Dial("tcp", arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return 0
			}
		}
	case "udp-dups":
		// 1000 sequential round trips: how many got a reply, and how many
		// extra copies of a reply arrived.
		c, read, err := dialPolled(arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		buf := make([]byte, 256)
		first, extra := 0, 0
		for i := 0; i < 1000; i++ {
			_, _ = c.Write([]byte(fmt.Sprintf("dup-%04d", i)))
			start := time.Now()
			for time.Since(start) < 100*time.Millisecond {
				if _, ok := read(buf); ok {
					first++
					break
				}
			}
			// A copy follows its original at once: count what comes
			// within 3 ms.
			for end := time.Now().Add(3 * time.Millisecond); time.Now().Before(end); {
				if _, ok := read(buf); ok {
					extra++
				}
			}
		}
		fmt.Printf("first %d extra %d\n", first, extra)
		return 0
	case "udp-samples":
		// 400 sequential round trips: each RTT in µs, -1 when lost, -2
		// when the reply differs from what was sent.
		c, read, err := dialPolled(arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		buf := make([]byte, 256)
		var out []string
		for i := 0; i < 400; i++ {
			msg := []byte(fmt.Sprintf("sample-%04d-%s", i, strings.Repeat("x", 64)))
			start := time.Now()
			_, _ = c.Write(msg)
			n := -1
			for n < 0 && time.Since(start) < 300*time.Millisecond {
				if k, ok := read(buf); ok {
					n = k
				}
			}
			switch {
			case n < 0:
				out = append(out, "-1")
			case string(buf[:n]) != string(msg):
				out = append(out, "-2")
			default:
				out = append(out, strconv.FormatInt(time.Since(start).Microseconds(), 10))
			}
			time.Sleep(2 * time.Millisecond) // let a late reply drain
			for {
				if _, ok := read(buf); !ok {
					break
				}
			}
		}
		fmt.Println(strings.Join(out, " "))
		return 0
	case "udp-rtt":
		c, err := net.Dial("udp", arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		var rtts []time.Duration
		buf := make([]byte, 64)
		raw, err := c.(*net.UDPConn).SyscallConn()
		if err != nil {
			return 1
		}
		for i := 0; i < 100; i++ {
			start := time.Now()
			_, _ = c.Write([]byte(strconv.Itoa(i)))
			// Busy-poll the socket: a parked goroutine wakes up late on
			// this VM, which would be counted as delay the fault never added.
			got := false
			for !got && time.Since(start) < time.Second {
				_ = raw.Read(func(fd uintptr) bool {
					n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
					got = err == nil && n > 0
					return true
				})
			}
			if got {
				rtts = append(rtts, time.Since(start))
			}
		}
		slices.Sort(rtts)
		if len(rtts) < 50 {
			fmt.Println("too few replies", len(rtts))
			return 1
		}
		fmt.Printf("p50 %f p99 %f\n", ms(rtts[len(rtts)/2]), ms(rtts[len(rtts)*99/100]))
		return 0
	case "dns-server":
		// A stand-in for the cluster DNS: every A query gets 10.1.2.3.
		dns.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			if len(q.Question) > 0 {
				rr, _ := dns.NewRR(q.Question[0].Name + " 30 IN A 10.1.2.3")
				m.Answer = append(m.Answer, rr)
			}
			_ = w.WriteMsg(m)
		})
		srv := &dns.Server{Addr: ":53", Net: "udp"}
		_ = srv.ListenAndServe()
		return 1
	case "dns-responder":
		f := &v1alpha1.DNSFault{Failure: v1alpha1.DNSFailure(os.Getenv("FL_DNS_FAILURE")), Percent: "50%", Hosts: []string{"*.db.svc.cluster.local"}}
		r, err := dnsfault.New(f)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if err := r.Start(); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ready")
		select {}
	case "dns-hijack":
		// A process in the pod that takes the port the agent's resolver
		// used to listen on (15353), and answers NXDOMAIN to everything.
		dns.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeNameError)
			_ = w.WriteMsg(m)
		})
		srv := &dns.Server{Addr: "127.0.0.1:15353", Net: "udp", NotifyStartedFunc: func() { fmt.Println("ready") }}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Println(err)
			return 1
		}
	case "dns-query":
		name, server, _ := strings.Cut(arg, "@")
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		counts := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < 20; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					q := new(dns.Msg)
					q.SetQuestion(dns.Fqdn(name), dns.TypeA)
					resp, _, err := c.Exchange(q, server)
					mu.Lock()
					if err != nil {
						counts["timeout"]++
					} else {
						counts[dns.RcodeToString[resp.Rcode]]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		fmt.Printf("NOERROR %d SERVFAIL %d NXDOMAIN %d timeout %d\n", counts["NOERROR"], counts["SERVFAIL"], counts["NXDOMAIN"], counts["timeout"])
		return 0
	case "udp-loss":
		c, err := net.Dial("udp", arg)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		const total = 10000
		got := make(chan int, 1)
		go func() {
			n, buf := 0, make([]byte, 64)
			for {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					got <- n
					return
				}
				n++
			}
		}()
		sendErrs := 0
		for i := 0; i < total; i++ {
			if _, err := c.Write([]byte(strconv.Itoa(i))); err != nil {
				sendErrs++
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // stay below socket buffer limits
			}
		}
		received := <-got
		fmt.Printf("loss %f senderrors %d\n", 1-float64(received)/total, sendErrs)
		return 0
	}
	return 2
}

// goodput runs a sink in dst and a blast from src and returns the sink's
// measured goodput in Mbit/s.
func (n *netns) goodput(t *testing.T, src, dst, dstIP string, port int) float64 {
	t.Helper()
	sink := n.helperCmd(dst, "sink", "0", strconv.Itoa(port))
	out, err := sink.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, dst, port, "tcp")
	blast := n.helperCmd(src, "blast", "0", net.JoinHostPort(dstIP, strconv.Itoa(port)))
	if err := blast.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blast.Process.Kill(); _ = blast.Wait() }()
	buf := make([]byte, 256)
	k, _ := out.Read(buf)
	_ = sink.Wait()
	var mbit float64
	if _, err := fmt.Sscanf(string(buf[:k]), "mbit %f", &mbit); err != nil {
		t.Fatalf("sink said %q", buf[:k])
	}
	return mbit
}

// TCP goodput is the wire rate less Ethernet, IP and TCP (with timestamps)
// headers: 1448 payload bytes per 1514-byte frame.
const goodputShare = 1448.0 / 1514.0

func TestBandwidthIsShapedWithinFivePercent(t *testing.T) {
	n := newNetns(t)
	const rate = 10.0 // Mbit
	n.apply(t, fmt.Sprintf("network: [{bandwidth: 10Mbit, to: ['%s:7001']}, {bandwidth: 5Mbit, direction: ingress, to: [':7003']}]", n.peerIP))
	shaped := n.goodput(t, n.pod, n.peer, n.peerIP, 7001)
	other := n.goodput(t, n.pod, n.peer, n.peerIP, 7002)
	in := n.goodput(t, n.peer, n.pod, n.podIP, 7003)
	want := rate * goodputShare
	t.Logf("egress 10Mbit requested: %.2f Mbit/s goodput (%.2f on the wire); another port: %.0f Mbit/s; ingress 5Mbit requested: %.2f Mbit/s goodput",
		shaped, shaped/goodputShare, other, in)
	if shaped < want*0.95 || shaped > want*1.05 {
		t.Errorf("egress goodput %.2f Mbit/s, want %.2f ± 5%%", shaped, want)
	}
	if other < 5*rate {
		t.Errorf("an unshaped port got %.1f Mbit/s: the limit leaked beyond its destination", other)
	}
	if wantIn := 5 * goodputShare; in < wantIn*0.90 || in > wantIn*1.10 {
		t.Errorf("ingress goodput %.2f Mbit/s, want %.2f ± 10%%", in, wantIn)
	}
	if err := Remove(context.Background(), n.runner, "flv0"); err != nil {
		t.Fatal(err)
	}
	out, _ := n.runner.Run(context.Background(), nil, "tc", "qdisc", "show", "dev", "flv0")
	links, _ := n.runner.Run(context.Background(), nil, "ip", "-o", "link", "show")
	if strings.Contains(string(out), "fa17:") || strings.Contains(string(out), "ingress") || strings.Contains(string(links), IFBDevice) {
		t.Errorf("shaping left after Remove:\n%s\n%s", out, links)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestDelayEngineAddsTheRequestedRoundTrip(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 7000, 7005)
	rtt := func(port string) (p50, p99 float64) {
		out := n.fromPod(t, "udp-rtt", net.JoinHostPort(n.peerIP, port))
		if _, err := fmt.Sscanf(out, "p50 %f p99 %f", &p50, &p99); err != nil {
			t.Fatalf("helper said %q", out)
		}
		return
	}
	base50, _ := rtt("7000")
	plan, nsFD := n.delayPlan(t, "50ms", 7000)
	eng, err := StartDelay(context.Background(), plan.Delays, nsFD)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop()
	if err := Apply(context.Background(), n.runner, plan); err != nil {
		t.Fatal(err)
	}
	p50, p99 := rtt("7000")
	other50, _ := rtt("7005")
	added := p50 - base50
	t.Logf("delay 50ms requested: RTT p50 %.2fms (baseline %.2fms, added %.2fms), p99 %.2fms; another port p50 %.2fms; %d packets delayed",
		p50, base50, added, p99, other50, eng.Delayed.Load())
	if d := added - 50; d > 1 && d/50 > 0.02 || d < -1 && -d/50 > 0.02 {
		t.Errorf("added %.2fms, want 50ms within 2%% or 1ms", added)
	}
	if other50 > base50+5 {
		t.Errorf("another port's RTT grew to %.2fms: the delay leaked", other50)
	}
	// With the engine gone, --queue-bypass lets traffic through again.
	eng.Stop()
	if after, _ := rtt("7000"); after > base50+5 {
		t.Errorf("with the engine stopped RTT is %.2fms: packets must bypass the queue", after)
	}
}

func TestDNSFailuresAtTheRequestedPercent(t *testing.T) {
	n := newNetns(t)
	srv := n.helperCmd(n.peer, "dns-server", "0", "53")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	count := func(t *testing.T, name string) map[string]int {
		got := n.fromPod(t, "dns-query", name+"@"+net.JoinHostPort(n.peerIP, "53"))
		m := map[string]int{}
		var ok, sf, nx, to int
		if _, err := fmt.Sscanf(got, "NOERROR %d SERVFAIL %d NXDOMAIN %d timeout %d", &ok, &sf, &nx, &to); err != nil {
			t.Fatalf("query helper said %q", got)
		}
		m["NOERROR"], m["servfail"], m["nxdomain"], m["timeout"] = ok, sf, nx, to
		return m
	}
	start := func(t *testing.T, mode, failure string) *exec.Cmd {
		resp := n.helperCmd(n.pod, mode, "0", net.JoinHostPort(n.peerIP, "53"))
		resp.Env = append(resp.Env, "FL_DNS_FAILURE="+failure)
		out, _ := resp.StdoutPipe()
		if err := resp.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Process.Kill(); _ = resp.Wait() })
		buf := make([]byte, 64)
		if k, _ := out.Read(buf); !strings.HasPrefix(string(buf[:k]), "ready") {
			t.Fatalf("%s: %q", mode, buf[:k])
		}
		return resp
	}
	t.Run("when the agent dies every lookup reaches the real resolver, and a process that takes its port gets none", func(t *testing.T) {
		agent := start(t, "dns-responder", "servfail")
		n.apply(t, "dns: {failure: servfail, percent: 50%, hosts: ['*.db.svc.cluster.local']}")
		defer func() { _ = Remove(context.Background(), n.runner, "") }()
		if hit := count(t, "pg.db.svc.cluster.local"); hit["servfail"] == 0 {
			t.Fatalf("no failures while the agent runs: %v", hit)
		}
		_ = agent.Process.Kill()
		_ = agent.Wait()
		// The rules stay (nothing removed them): the queue has no reader,
		// so queries pass to the real resolver.
		dead := count(t, "pg.db.svc.cluster.local")
		start(t, "dns-hijack", "")
		hijacked := count(t, "pg.db.svc.cluster.local")
		t.Logf("agent killed, rules left: %v; a process on the responder's port: %v", dead, hijacked)
		if dead["NOERROR"] != 1000 || hijacked["NOERROR"] != 1000 {
			t.Errorf("lookups failed or were hijacked after the agent died: %v, %v", dead, hijacked)
		}
	})
	t.Run("queries to an IPv6 server fail as those to an IPv4 one", func(t *testing.T) {
		// Warm the neighbour cache first: 20 concurrent first packets to
		// an unresolved IPv6 neighbour overflow its queue and time out
		// (measured: 100 of 1000, with no fault at all).
		_ = n.fromPod(t, "dns-query", "warm.up@"+net.JoinHostPort(n.peerIP6, "53"))
		start(t, "dns-responder", "nxdomain")
		n.apply(t, "dns: {failure: nxdomain, percent: 50%, hosts: ['*.db.svc.cluster.local']}")
		defer func() { _ = Remove(context.Background(), n.runner, "") }()
		got := n.fromPod(t, "dns-query", "pg.db.svc.cluster.local@"+net.JoinHostPort(n.peerIP6, "53"))
		var ok, sf, nx, to int
		if _, err := fmt.Sscanf(got, "NOERROR %d SERVFAIL %d NXDOMAIN %d timeout %d", &ok, &sf, &nx, &to); err != nil {
			t.Fatalf("query helper said %q", got)
		}
		t.Logf("requested 50%% nxdomain from an IPv6 server: measured %.1f%% (NOERROR %d, NXDOMAIN %d, other %d)", float64(nx)/10, ok, nx, sf+to)
		if nx < 420 || nx > 580 || ok+nx != 1000 {
			t.Errorf("over IPv6: NOERROR %d NXDOMAIN %d SERVFAIL %d timeout %d, want 50%% ± 8 NXDOMAIN and nothing else", ok, nx, sf, to)
		}
	})
	for _, failure := range []string{"servfail", "nxdomain", "timeout"} {
		t.Run(failure+" for half of the matching names and none of the others", func(t *testing.T) {
			start(t, "dns-responder", failure)
			n.apply(t, "dns: {failure: "+failure+", percent: 50%, hosts: ['*.db.svc.cluster.local']}")
			defer func() { _ = Remove(context.Background(), n.runner, "") }()
			count := func(name string) map[string]int { return count(t, name) }
			hit := count("pg.db.svc.cluster.local")
			miss := count("api.other.svc.cluster.local")
			rate := float64(hit[failure]) / 1000
			t.Logf("requested 50%% %s: measured %.1f%% (%v); other names: %v", failure, rate*100, hit, miss)
			// ±8 points is 5 standard deviations over 1000 queries (σ = 1.6
			// points at 50%): ±5 (3σ) failed a CI run by chance at 55.3%.
			if rate < 0.42 || rate > 0.58 {
				t.Errorf("failure rate %.1f%%, want 50%% (±8 points over 1000 queries)", rate*100)
			}
			if hit["NOERROR"]+hit[failure] != 1000 {
				t.Errorf("unexpected outcomes: %v", hit)
			}
			if miss["NOERROR"] != 1000 {
				t.Errorf("names that do not match were disturbed: %v", miss)
			}
		})
	}
}

// Stopping the engine in the middle of traffic (after its rules are gone,
// as the agent does) releases every packet it holds or is being handed,
// loses none, and leaves no goroutine behind (issue 12 item 15: the queue
// was unbound while held packets were still being released, and the kernel
// dropped them: 5% of 10,000 packets at each stop).
func TestStoppingTheDelayEngineUnderTrafficLosesNothing(t *testing.T) {
	n := newNetns(t)
	n.serve(t, 7000)
	plan, nsFD := n.delayPlan(t, "20ms", 7000)
	baseline := runtime.NumGoroutine()
	// round runs 10,000 packets through the engine; with stopMidway the
	// rules go and the engine stops while they flow, else after. The
	// second kind is the control: what this machine loses anyway (a busy
	// CI box drops some at the receiving socket).
	round := func(i int, stopMidway bool) float64 {
		eng, err := StartDelay(context.Background(), plan.Delays, nsFD)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(context.Background(), n.runner, plan); err != nil {
			t.Fatal(err)
		}
		load := n.helperCmd(n.pod, "udp-loss", "0", net.JoinHostPort(n.peerIP, "7000"))
		var out strings.Builder
		load.Stdout = &out
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			// The agent's order on pause and SIGTERM: rules first, so
			// nothing new is queued, then the engine lets go of what it
			// holds.
			if err := Remove(context.Background(), n.runner, ""); err != nil {
				t.Fatal(err)
			}
			eng.Stop()
		}
		if stopMidway {
			time.Sleep(time.Duration(50+20*i) * time.Millisecond)
			stop()
		}
		_ = load.Wait()
		if !stopMidway {
			stop()
		}
		var loss float64
		var sendErrs int
		if _, err := fmt.Sscanf(out.String(), "loss %f senderrors %d", &loss, &sendErrs); err != nil {
			t.Fatalf("helper said %q", out.String())
		}
		return loss
	}
	var lost, control []float64
	for i := 0; i < 5; i++ {
		lost = append(lost, round(i, true))
		control = append(control, round(i, false))
	}
	time.Sleep(100 * time.Millisecond)
	after := runtime.NumGoroutine()
	t.Logf("loss per stop under 10,000 packets: %v; control (stopped after the traffic): %v; goroutines %d before, %d after 10 start/stop rounds", lost, control, baseline, after)
	// Before the fix every stop lost 1.7-5%; allow what the control lost
	// plus 0.1 point per round for the machine's own noise.
	var sumLost, sumControl float64
	for i := range lost {
		sumLost, sumControl = sumLost+lost[i], sumControl+control[i]
	}
	if sumLost > sumControl+0.001*float64(len(lost)) {
		t.Errorf("packets lost when the engine stopped: %v (control %v)", lost, control)
	}
	if after > baseline {
		t.Errorf("%d goroutines left behind by 5 start/stop rounds", after-baseline)
	}
}
