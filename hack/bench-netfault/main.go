// Command bench-netfault measures the network-fault agent for real, as root,
// in network namespaces it creates and removes: the time to apply and to
// remove a 10-rule spec, the NFQUEUE delay engine's throughput and CPU at
// 50 ms, and the agent's RSS and idle CPU. It prints a table.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

const tenRules = `network:
  - {partition: true, to: ["10.9.0.0/16:5432"]}
  - {reset: true, to: ["10.8.0.1:443"]}
  - {loss: 5%, direction: both, to: [":53/udp"]}
  - {loss: 1%, to: ["10.10.0.0/16"]}
  - {partition: true, direction: ingress, to: [":9000"]}
  - {reset: true, to: ["10.11.0.5:8443/tcp"]}
  - {delay: 50ms, to: ["10.12.0.0/16"]}
  - {bandwidth: 5Mbit, to: ["10.13.0.0/16"]}
  - {loss: 2%, direction: ingress, to: [":8080"]}
  - {partition: true, to: ["10.14.0.0/16"], except: ["10.14.0.1"]}
`

func main() {
	idle := flag.Duration("idle", time.Minute, "how long to watch the idle agent")
	agent := flag.String("agent", "bin/faultline-agent", "faultline-agent binary")
	flag.Parse()
	if mode := os.Getenv("BENCH_NETFAULT_MODE"); mode != "" {
		os.Exit(inside(mode, flag.Args()))
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench-netfault needs root (ip netns, iptables)")
		os.Exit(2)
	}
	if err := run(*agent, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench-netfault:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %v: %s", args, err, out)
	}
	return nil
}

func self(ns, mode string, args ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, exe}, args...)...)
	cmd.Env = append(os.Environ(), "BENCH_NETFAULT_MODE="+mode)
	return cmd
}

func run(agent string, idle time.Duration) error {
	pod, peer := fmt.Sprintf("flb-pod-%d", os.Getpid()), fmt.Sprintf("flb-peer-%d", os.Getpid())
	for _, ns := range []string{pod, peer} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return err
		}
		defer func(ns string) { _ = exec.Command("ip", "netns", "del", ns).Run() }(ns)
	}
	steps := [][]string{
		{"ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "eth0", "netns", peer},
		{"ip", "-n", pod, "addr", "add", "10.12.0.2/16", "dev", "eth0"},
		{"ip", "-n", peer, "addr", "add", "10.12.0.1/16", "dev", "eth0"},
		{"ip", "-n", pod, "link", "set", "eth0", "up"}, {"ip", "-n", peer, "link", "set", "eth0", "up"},
		{"ip", "-n", pod, "link", "set", "lo", "up"}, {"ip", "-n", peer, "link", "set", "lo", "up"},
		{"ip", "-n", pod, "route", "add", "default", "via", "10.12.0.1"},
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return err
		}
	}
	fmt.Printf("| measurement | value | goal |\n|---|---|---|\n")

	out, err := self(pod, "apply-remove").Output()
	if err != nil {
		return fmt.Errorf("apply/remove: %v", err)
	}
	fmt.Print(string(out))

	// The delay engine: the peer blasts UDP from port 7000 (the delayed
	// source) at the pod for 5s; the pod counts what arrives.
	spec := `{"network":[{"delay":"50ms","to":["10.12.0.1:7000/udp"]}]}`
	ag := exec.Command("ip", "netns", "exec", pod, agent, "run", "--listen=127.0.0.1:19091", "--proc=")
	ag.Env = append(os.Environ(), "FAULTLINE_SPEC="+spec)
	if err := ag.Start(); err != nil {
		return err
	}
	time.Sleep(time.Second)
	counter := self(pod, "count", "9100", "6")
	cout, _ := counter.StdoutPipe()
	if err := counter.Start(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	cpu0 := cpuTicks(ag.Process.Pid)
	blast := self(peer, "blast", "10.12.0.2:9100")
	if err := blast.Start(); err != nil {
		return err
	}
	buf := make([]byte, 128)
	k, _ := cout.Read(buf)
	_ = counter.Wait()
	cpu1 := cpuTicks(ag.Process.Pid)
	_ = blast.Process.Kill()
	_ = blast.Wait()
	pps, _ := strconv.ParseFloat(strings.TrimSpace(string(buf[:k])), 64)
	fmt.Printf("| delay engine at 50 ms: packets per second delivered | %.0f | - |\n", pps)
	fmt.Printf("| delay engine at 50 ms: agent CPU | %.0f millicores | - |\n", float64(cpu1-cpu0)/100/6*1000)
	_ = ag.Process.Signal(os.Interrupt)
	_ = ag.Wait()

	// Idle agent with the 10-rule spec.
	specJSON, err := toJSON(tenRules)
	if err != nil {
		return err
	}
	ag = exec.Command("ip", "netns", "exec", pod, agent, "run", "--listen=127.0.0.1:19091", "--proc=")
	ag.Env = append(os.Environ(), "FAULTLINE_SPEC="+specJSON)
	if err := ag.Start(); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	c0 := cpuTicks(ag.Process.Pid)
	time.Sleep(idle)
	c1 := cpuTicks(ag.Process.Pid)
	rss := rssKiB(ag.Process.Pid)
	_ = ag.Process.Signal(os.Interrupt)
	_ = ag.Wait()
	fmt.Printf("| agent RSS, 10-rule spec applied | %.1f MiB | ≤ 15 MiB |\n", float64(rss)/1024)
	fmt.Printf("| agent idle CPU over %s | %.2f millicores | < 1 |\n", idle, float64(c1-c0)/100/idle.Seconds()*1000)
	return nil
}

func toJSON(y string) (string, error) {
	spec, errs := v1alpha1.ParseFaultSpec(y, nil)
	if len(errs) > 0 {
		return "", errs.ToAggregate()
	}
	b, err := json.Marshal(spec)
	return string(b), err
}

// cpuTicks is utime+stime of pid in clock ticks (100 per second).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rssKiB(pid int) int64 {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

// inside runs in a namespace (re-executed under ip netns exec).
func inside(mode string, args []string) int {
	switch mode {
	case "apply-remove":
		spec, errs := v1alpha1.ParseFaultSpec(tenRules, nil)
		if len(errs) > 0 {
			fmt.Println(errs.ToAggregate())
			return 1
		}
		ctx := context.Background()
		// As the agent finds almost every namespace: with IPv6, so both
		// families are written and removed.
		base, err := netfault.Build(spec, netfault.Options{Interface: "eth0", Caps: netfault.Capabilities{NFQueue: true, IPv6: true}})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		// Side by side in one run: every command a process (the agent
		// before), and the agent's runner now (tc and ip through netlink,
		// iptables still one save and one restore, jumps gated).
		host, gated := netfault.HostRunner()
		if !gated {
			fmt.Println("no ipset/netlink here: cannot measure the agent's runner")
			return 1
		}
		// off: how long a Remove takes until traffic is free (the switch's
		// sets emptied), for a runner with the switch.
		median := func(r netfault.Runner, plan netfault.Plan) (apply, remove, off time.Duration, err error) {
			var ap, rm, of []time.Duration
			for i := 0; i < 20; i++ {
				t := time.Now()
				if err := netfault.Apply(ctx, r, plan); err != nil {
					return 0, 0, 0, err
				}
				ap = append(ap, time.Since(t))
				t = time.Now()
				tr := r
				if g, ok := r.(netfault.Gated); ok {
					tr = &timedOff{Gated: g, start: t}
				}
				if err := netfault.Remove(ctx, tr, "eth0", netfault.NFT); err != nil {
					return 0, 0, 0, err
				}
				rm = append(rm, time.Since(t))
				if to, ok := tr.(*timedOff); ok {
					of = append(of, to.took)
				}
			}
			slices.Sort(ap)
			slices.Sort(rm)
			slices.Sort(of)
			if len(of) == 0 {
				of = rm
			}
			return ap[10], rm[10], of[10], nil
		}
		n := strings.Count(base.Restore, "\n-A ")
		noShape := base
		noShape.Shape = nil
		for _, c := range []struct {
			what, goal string
			plan       netfault.Plan
		}{
			{fmt.Sprintf("the 10-rule spec (%d iptables rules, %d tc commands)", n, len(base.Shape)), "≤ 20 ms", base},
			{"the 9 rules without bandwidth (iptables only)", "≤ 10 ms", noShape},
		} {
			ea, er, _, err := median(netfault.Exec{}, c.plan)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			na, nr, nf, err := median(host, c.plan)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			fmt.Printf("| apply / remove %s, both families, median of 20: every command a process | %.1f / %.1f ms | |\n", c.what, ms(ea), ms(er))
			fmt.Printf("| the same with tc through netlink and the dead man's switch (the agent's runner) | %.1f / %.1f ms (%.2f× / %.2f×); traffic free %.2f ms into the remove | %s |\n",
				ms(na), ms(nr), float64(na)/float64(ea), float64(nr)/float64(er), ms(nf), c.goal)
		}
		return 0
	case "count":
		pc, err := net.ListenPacket("udp", ":"+args[0])
		if err != nil {
			return 1
		}
		secs, _ := strconv.Atoi(args[1])
		buf := make([]byte, 2048)
		n := 0
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		var first time.Time
		for time.Now().Before(deadline) {
			_ = pc.SetReadDeadline(deadline)
			if _, _, err := pc.ReadFrom(buf); err != nil {
				break
			}
			if first.IsZero() {
				first = time.Now()
			}
			n++
		}
		fmt.Printf("%f\n", float64(n)/time.Since(first).Seconds())
		return 0
	case "blast":
		laddr := &net.UDPAddr{Port: 7000}
		raddr, _ := net.ResolveUDPAddr("udp", args[0])
		c, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return 1
		}
		msg := make([]byte, 64)
		for {
			_, _ = c.Write(msg)
		}
	}
	return 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// timedOff is the agent's runner, noting when Remove has emptied the
// switch's sets: from then on no faultline rule matches.
type timedOff struct {
	netfault.Gated
	start time.Time
	took  time.Duration
}

func (t *timedOff) Off(ctx context.Context) error {
	err := t.Gated.Off(ctx)
	t.took = time.Since(t.start)
	return err
}
