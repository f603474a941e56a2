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
	{"mangle", []hook{{"OUTPUT", ChainDNSQueue}}},
}

func jumpSpec(h hook) string {
	return fmt.Sprintf("%s -m comment --comment %s -j %s", h.builtin, Comment, h.chain)
}

// Apply makes the kernel hold exactly plan's rules with one read
// (iptables-save) and one atomic write (iptables-restore --noflush, every
// table in one transaction). Declaring the chains in the payload flushes
// them, and the jumps are added only when missing and de-duplicated when a
// crash left extras, so any number of Apply calls, in any state, converge to
// one copy. Other owners' rules are never named.
func Apply(ctx context.Context, r Runner, plan Plan) error {
	saved, err := r.Run(ctx, nil, "iptables-save")
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	var b strings.Builder
	writeTable(&b, tables[0].hooks, plan.Restore, section(string(saved), "filter"))
	writeRemoval(&b, tables[1].name, tables[1].hooks, section(string(saved), "nat"))
	if plan.RestoreMangle != "" {
		writeTable(&b, tables[2].hooks, plan.RestoreMangle, section(string(saved), "mangle"))
	} else {
		writeRemoval(&b, tables[2].name, tables[2].hooks, section(string(saved), "mangle"))
	}
	if _, err := r.Run(ctx, []byte(b.String()), "iptables-restore", "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("applying rules: %w", err)
	}
	return applyShaping(ctx, r, plan)
}

// writeTable appends payload with the jump fix-ups its table needs.
func writeTable(b *strings.Builder, hooks []hook, payload, current string) {
	b.WriteString(strings.TrimSuffix(payload, "COMMIT\n"))
	for _, h := range hooks {
		n := countJumps(current, h.builtin, h.chain)
		switch {
		case n == 0:
			// First in the built-in chain, so other owners' ACCEPTs
			// cannot bypass the faults.
			fmt.Fprintf(b, "-I %s 1 -m comment --comment %s -j %s\n", h.builtin, Comment, h.chain)
		case n > 1:
			for i := 1; i < n; i++ {
				fmt.Fprintf(b, "-D %s\n", jumpSpec(h))
			}
		}
	}
	b.WriteString("COMMIT\n")
}

// writeRemoval appends what deletes faultline's jumps and chains from one
// table, or nothing when the table holds none.
func writeRemoval(b *strings.Builder, table string, hooks []hook, current string) {
	var decl, del, drop strings.Builder
	for _, h := range hooks {
		for i := countJumps(current, h.builtin, h.chain); i > 0; i-- {
			fmt.Fprintf(&del, "-D %s\n", jumpSpec(h))
		}
		if strings.Contains(current, "\n:"+h.chain+" ") {
			// Declaring flushes the chain, so -X finds it empty.
			fmt.Fprintf(&decl, ":%s - [0:0]\n", h.chain)
			fmt.Fprintf(&drop, "-X %s\n", h.chain)
		}
	}
	if decl.Len()+del.Len() == 0 {
		return
	}
	b.WriteString("*" + table + "\n" + decl.String() + del.String() + drop.String() + "COMMIT\n")
}

// section is one table of iptables-save output, from "*table" to COMMIT.
func section(save, table string) string {
	start := strings.Index(save, "*"+table+"\n")
	if start < 0 {
		return ""
	}
	rest := save[start:]
	if end := strings.Index(rest, "\nCOMMIT"); end >= 0 {
		rest = rest[:end+1]
	}
	return rest
}

// Remove deletes every jump, chain, qdisc and device faultline owns, leaving
// everything else as it was. Removing nothing is not an error. iface is the
// shaped interface ("" when there is none).
func Remove(ctx context.Context, r Runner, iface string) error {
	if err := removeShaping(ctx, r, iface); err != nil {
		return err
	}
	saved, err := r.Run(ctx, nil, "iptables-save")
	if err != nil {
		return fmt.Errorf("reading rules: %w", err)
	}
	var b strings.Builder
	for _, t := range tables {
		writeRemoval(&b, t.name, t.hooks, section(string(saved), t.name))
	}
	if b.Len() == 0 {
		return nil
	}
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
