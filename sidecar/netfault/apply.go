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
	{"nat", []hook{{"OUTPUT", ChainDNS}, {"PREROUTING", ChainHTTPIn}, {"OUTPUT", ChainHTTPOut}}},
	{"mangle", []hook{{"OUTPUT", ChainDNSQueue}}},
}

// jumpSpec is the jump as iptables-save prints it; gated jumps also match
// the dead man's switch (set: AliveSet, or AliveSet6 for IPv6).
func jumpSpec(h hook, set string) string {
	if set != "" {
		return fmt.Sprintf("%s -m set --match-set %s dst -m comment --comment %s -j %s", h.builtin, set, Comment, h.chain)
	}
	return fmt.Sprintf("%s -m comment --comment %s -j %s", h.builtin, Comment, h.chain)
}

// Apply makes the kernel hold exactly plan's rules with one read
// (iptables-save) and one atomic write (iptables-restore --noflush, every
// table in one transaction). Declaring the chains in the payload flushes
// them, and the jumps are added only when missing and de-duplicated when a
// crash left extras, so any number of Apply calls, in any state, converge to
// one copy. Other owners' rules are never named.
func Apply(ctx context.Context, r Runner, plan Plan) error {
	sw, gated := r.(Switch)
	if gated {
		// The set must exist before a rule can name it.
		ttl := plan.AliveTTL
		if ttl == 0 {
			ttl = DefaultTTL
		}
		if err := sw.Arm(ctx, ttl); err != nil {
			return err
		}
	}
	fams := []family{{"", plan.Backend.Save(), plan.Backend.Restore(), plan.Restore, plan.RestoreMangle, plan.RestoreNat, AliveSet, AliveSetHTTP}}
	if plan.Restore6 != "" {
		fams = append(fams, family{"IPv6 ", plan.Backend.Save6(), plan.Backend.Restore6(), plan.Restore6, plan.RestoreMangle6, plan.RestoreNat6, AliveSet6, AliveSetHTTP6})
	}
	for _, f := range fams {
		if !gated {
			f.set, f.httpSet = "", ""
		}
		if err := f.apply(ctx, r); err != nil {
			return err
		}
	}
	return applyShaping(ctx, r, plan)
}

// family is one address family's tools, payloads and switch sets.
type family struct {
	label, save, restore string
	filter, mangle, nat  string
	// set gates the filter and mangle jumps, httpSet the nat ones; ""
	// when the jumps are not gated.
	set, httpSet string
}

// apply is one read and one atomic write for the family: the filter
// payload, the HTTP redirects in nat (or their removal, with the nat chain
// older agents made), the DNS queue in mangle (or its removal).
func (f family) apply(ctx context.Context, r Runner) error {
	saved, err := r.Run(ctx, nil, f.save)
	if err != nil {
		return fmt.Errorf("reading %srules: %w", f.label, err)
	}
	var b strings.Builder
	writeTable(&b, tables[0].hooks, f.filter, section(string(saved), "filter"), f.set)
	if nat := section(string(saved), "nat"); f.nat != "" {
		// The DNS chain older agents made goes in the same section.
		var old strings.Builder
		writeRemoval(&old, "nat", tables[1].hooks[:1], nat)
		payload := f.nat
		if old.Len() > 0 {
			payload = strings.TrimSuffix(old.String(), "COMMIT\n") + strings.TrimPrefix(f.nat, "*nat\n")
		}
		writeTable(&b, tables[1].hooks[1:], payload, nat, f.httpSet)
	} else {
		writeRemoval(&b, tables[1].name, tables[1].hooks, nat)
	}
	if f.mangle != "" {
		writeTable(&b, tables[2].hooks, f.mangle, section(string(saved), "mangle"), f.set)
	} else {
		writeRemoval(&b, tables[2].name, tables[2].hooks, section(string(saved), "mangle"))
	}
	if _, err := r.Run(ctx, []byte(b.String()), f.restore, "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("applying %srules: %w", f.label, err)
	}
	return nil
}

// writeTable appends payload with the jump fix-ups its table needs: one
// jump of the wanted form, first in its built-in chain; extra copies (a
// crash) and jumps of another form (an older agent) are deleted by their
// exact saved text.
func writeTable(b *strings.Builder, hooks []hook, payload, current, set string) {
	b.WriteString(strings.TrimSuffix(payload, "COMMIT\n"))
	for _, h := range hooks {
		want := jumpSpec(h, set)
		lines := jumpLines(current, h.builtin, h.chain)
		if len(lines) == 1 && lines[0] == want {
			continue
		}
		for _, l := range lines {
			fmt.Fprintf(b, "-D %s\n", l)
		}
		// First in the built-in chain, so other owners' ACCEPTs cannot
		// bypass the faults.
		fmt.Fprintf(b, "-I %s 1 %s\n", h.builtin, strings.TrimPrefix(want, h.builtin+" "))
	}
	b.WriteString("COMMIT\n")
}

// writeRemoval appends what deletes faultline's jumps and chains from one
// table, or nothing when the table holds none.
func writeRemoval(b *strings.Builder, table string, hooks []hook, current string) {
	var decl, del, drop strings.Builder
	for _, h := range hooks {
		for _, l := range jumpLines(current, h.builtin, h.chain) {
			fmt.Fprintf(&del, "-D %s\n", l)
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
// shaped interface ("" when there is none). backends are where to look;
// none means both (clean-up after a crash, whatever backend that run used;
// a backend whose tools are missing has nothing of faultline's).
func Remove(ctx context.Context, r Runner, iface string, backends ...Backend) error {
	if sw, ok := r.(Switch); ok {
		// Traffic is free the moment the sets are empty; deleting the
		// rules below is clean-up.
		if err := sw.Off(ctx); err != nil {
			return err
		}
	}
	if err := removeShaping(ctx, r, iface); err != nil {
		return err
	}
	if len(backends) == 0 {
		backends = []Backend{NFT, Legacy}
	}
	for _, be := range backends {
		for _, fam := range []struct {
			save, restore string
			v6            bool
		}{{be.Save(), be.Restore(), false}, {be.Save6(), be.Restore6(), true}} {
			saved, err := r.Run(ctx, nil, fam.save)
			if err != nil {
				// A backend or family whose tools are missing, or a
				// kernel without IPv6, holds nothing of faultline's.
				if be == Legacy && len(backends) > 1 || fam.v6 {
					continue
				}
				return fmt.Errorf("reading rules: %w", err)
			}
			var b strings.Builder
			for _, t := range tables {
				writeRemoval(&b, t.name, t.hooks, section(string(saved), t.name))
			}
			if b.Len() > 0 {
				if _, err := r.Run(ctx, []byte(b.String()), fam.restore, "-w", "5", "--noflush"); err != nil {
					return fmt.Errorf("removing rules: %w", err)
				}
			}
		}
	}
	if sw, ok := r.(Switch); ok {
		// After the rules: a set a rule names cannot be destroyed.
		return sw.Disarm(ctx)
	}
	return nil
}

// jumpLines are the saved jumps from builtin to chain, without "-A ".
func jumpLines(save, builtin, chain string) []string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "-A "+builtin+" ") && strings.HasSuffix(line, "-j "+chain) {
			out = append(out, strings.TrimPrefix(line, "-A "))
		}
	}
	return out
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
	// Per network namespace: /proc/net follows the caller's.
	_, err = os.Stat("/proc/net/if_inet6")
	c.IPv6 = err == nil
	return c
}
