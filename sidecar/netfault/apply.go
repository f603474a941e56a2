package netfault

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// hook is a jump from a built-in chain to one of faultline's.
type hook struct{ builtin, chain string }

// tables are where faultline has chains, and the jumps into them.
var tables = []struct {
	name  string
	hooks []hook
}{
	{"filter", []hook{{"OUTPUT", ChainOut}, {"INPUT", ChainIn}}},
	{"nat", []hook{{"OUTPUT", ChainDNS}}},
}

func jumpSpec(h hook) string {
	return fmt.Sprintf("%s -m comment --comment %s -j %s", h.builtin, Comment, h.chain)
}

// Apply makes the kernel hold exactly plan's rules: per table one read
// (iptables -S) and one atomic write (iptables-restore --noflush).
// Declaring the chains in the payload flushes them, and the jumps are added
// only when missing and de-duplicated when a crash left extras, so any
// number of Apply calls, in any state, converge to one copy. Other owners'
// rules are never named.
func Apply(ctx context.Context, r Runner, plan Plan) error {
	if err := applyTable(ctx, r, tables[0].name, tables[0].hooks, plan.Restore); err != nil {
		return err
	}
	if plan.RestoreNat != "" {
		if err := applyTable(ctx, r, tables[1].name, tables[1].hooks, plan.RestoreNat); err != nil {
			return err
		}
	} else if err := removeTable(ctx, r, tables[1].name, tables[1].hooks); err != nil {
		return err
	}
	return applyShaping(ctx, r, plan)
}

func applyTable(ctx context.Context, r Runner, table string, hooks []hook, payload string) error {
	current, err := r.Run(ctx, nil, "iptables", "-w", "5", "-t", table, "-S")
	if err != nil {
		return fmt.Errorf("reading %s rules: %w", table, err)
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(payload, "COMMIT\n"))
	for _, h := range hooks {
		n := countJumps(string(current), h.builtin, h.chain)
		switch {
		case n == 0:
			// First in the built-in chain, so other owners' ACCEPTs
			// cannot bypass the faults.
			fmt.Fprintf(&b, "-I %s 1 -m comment --comment %s -j %s\n", h.builtin, Comment, h.chain)
		case n > 1:
			for i := 1; i < n; i++ {
				fmt.Fprintf(&b, "-D %s\n", jumpSpec(h))
			}
		}
	}
	b.WriteString("COMMIT\n")
	if _, err := r.Run(ctx, []byte(b.String()), "iptables-restore", "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("applying %s rules: %w", table, err)
	}
	return nil
}

// Remove deletes every jump, chain, qdisc and device faultline owns, leaving
// everything else as it was. Removing nothing is not an error. iface is the
// shaped interface ("" when there is none).
func Remove(ctx context.Context, r Runner, iface string) error {
	if err := removeShaping(ctx, r, iface); err != nil {
		return err
	}
	for _, t := range tables {
		if err := removeTable(ctx, r, t.name, t.hooks); err != nil {
			return err
		}
	}
	return nil
}

func removeTable(ctx context.Context, r Runner, table string, hooks []hook) error {
	current, err := r.Run(ctx, nil, "iptables", "-w", "5", "-t", table, "-S")
	if err != nil {
		return fmt.Errorf("reading %s rules: %w", table, err)
	}
	cur := string(current)
	var decl, del, drop strings.Builder
	for _, h := range hooks {
		for i := countJumps(cur, h.builtin, h.chain); i > 0; i-- {
			fmt.Fprintf(&del, "-D %s\n", jumpSpec(h))
		}
		if strings.Contains(cur, "-N "+h.chain+"\n") {
			// Declaring flushes the chain, so -X finds it empty.
			fmt.Fprintf(&decl, ":%s - [0:0]\n", h.chain)
			fmt.Fprintf(&drop, "-X %s\n", h.chain)
		}
	}
	if decl.Len()+del.Len() == 0 {
		return nil
	}
	payload := "*" + table + "\n" + decl.String() + del.String() + drop.String() + "COMMIT\n"
	if _, err := r.Run(ctx, []byte(payload), "iptables-restore", "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("removing %s rules: %w", table, err)
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
