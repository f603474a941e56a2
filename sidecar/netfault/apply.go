package netfault

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// hooks are the built-in chains faultline jumps from.
var hooks = [][2]string{{"OUTPUT", ChainOut}, {"INPUT", ChainIn}}

func jumpSpec(builtin, chain string) string {
	return fmt.Sprintf("%s -m comment --comment %s -j %s", builtin, Comment, chain)
}

// Apply makes the kernel hold exactly plan's rules: one read (iptables -S)
// and one atomic write (iptables-restore --noflush). Declaring the chains in
// the payload flushes them, and the jumps are added only when missing and
// de-duplicated when a crash left extras, so any number of Apply calls, in
// any state, converge to one copy. Other owners' rules are never named.
func Apply(ctx context.Context, r Runner, plan Plan) error {
	current, err := r.Run(ctx, nil, "iptables", "-w", "5", "-t", "filter", "-S")
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	var b strings.Builder
	payload := strings.TrimSuffix(plan.Restore, "COMMIT\n")
	b.WriteString(payload)
	for _, h := range hooks {
		n := countJumps(string(current), h[0], h[1])
		switch {
		case n == 0:
			// First in the built-in chain, so other owners' ACCEPTs
			// cannot bypass the faults.
			fmt.Fprintf(&b, "-I %s 1 -m comment --comment %s -j %s\n", h[0], Comment, h[1])
		case n > 1:
			for i := 1; i < n; i++ {
				fmt.Fprintf(&b, "-D %s\n", jumpSpec(h[0], h[1]))
			}
		}
	}
	b.WriteString("COMMIT\n")
	if _, err := r.Run(ctx, []byte(b.String()), "iptables-restore", "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("applying rules: %w", err)
	}
	return applyShaping(ctx, r, plan)
}

// Remove deletes every jump, chain, qdisc and device faultline owns, leaving
// everything else as it was. Removing nothing is not an error. iface is the
// shaped interface ("" when there is none).
func Remove(ctx context.Context, r Runner, iface string) error {
	if err := removeShaping(ctx, r, iface); err != nil {
		return err
	}
	current, err := r.Run(ctx, nil, "iptables", "-w", "5", "-t", "filter", "-S")
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	cur := string(current)
	var decl, del, drop strings.Builder
	for _, h := range hooks {
		for i := countJumps(cur, h[0], h[1]); i > 0; i-- {
			fmt.Fprintf(&del, "-D %s\n", jumpSpec(h[0], h[1]))
		}
		if strings.Contains(cur, "-N "+h[1]+"\n") {
			// Declaring flushes the chain, so -X finds it empty.
			fmt.Fprintf(&decl, ":%s - [0:0]\n", h[1])
			fmt.Fprintf(&drop, "-X %s\n", h[1])
		}
	}
	if decl.Len()+del.Len() == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("*filter\n" + decl.String() + del.String() + drop.String())
	b.WriteString("COMMIT\n")
	if _, err := r.Run(ctx, []byte(b.String()), "iptables-restore", "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("removing rules: %w", err)
	}
	return nil
}

func countJumps(save, builtin, chain string) int {
	n := 0
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A "+builtin+" ") && strings.HasSuffix(line, "-j "+chain) {
			n++
		}
	}
	return n
}

// Probe reports what this network namespace's kernel offers.
func Probe(ctx context.Context, r Runner) Capabilities {
	var c Capabilities
	// A dummy link is the only safe place to try a netem qdisc.
	const probeLink = "fl-probe0"
	if _, err := r.Run(ctx, nil, "ip", "link", "add", probeLink, "type", "veth", "peer", "name", "fl-probe1"); err == nil {
		_, err := r.Run(ctx, nil, "tc", "qdisc", "add", "dev", probeLink, "root", "netem", "delay", "1ms")
		c.Netem = err == nil
		_, _ = r.Run(ctx, nil, "ip", "link", "del", probeLink)
	}
	_, err := os.Stat("/proc/net/netfilter/nfnetlink_queue")
	c.NFQueue = err == nil
	return c
}
