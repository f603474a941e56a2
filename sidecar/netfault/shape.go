package netfault

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Traffic shaping (bandwidth) with tc, through the same Runner. Everything
// lives under root qdisc handle fa17: (and, for ingress, the IFB device
// fl-ifb0 fed by an ingress qdisc), so removal is exact.
const (
	shapeHandle = "fa17:"
	IFBDevice   = "fl-ifb0"
	// defaultRate keeps unshaped traffic unlimited in practice.
	defaultRate = "100gbit"
)

// defaultQdiscs are the kernel's own root qdiscs; anything else belongs to
// another owner, and faultline refuses to replace it.
var defaultQdiscs = []string{"noqueue", "pfifo_fast", "fq_codel", "mq", "pfifo", "fq", "sfq"}

// shapeDev is one device's HTB classes and filters: the pod's interface
// for egress, the IFB device its ingress is redirected to.
type shapeDev struct {
	name    string
	classes [][]string
	filters [][]string
}

// shaping is the tc layout for the spec's bandwidth rules, on the
// destinations Build resolved (rules), so the filters match what the
// iptables rules match. Rules still waiting for a host are skipped (Build
// reports them).
func shaping(spec *v1alpha1.FaultSpec, rules []resolvedRule, iface string, ipv6 bool) (cmds [][]string, active bool, refused []string) {
	egress, ingress := &shapeDev{name: iface}, &shapeDev{name: IFBDevice}
	for i, r := range spec.Network {
		switch {
		case r.Bandwidth == "" || rules[i].err != nil:
			continue
		case iface == "":
			refused = append(refused, fmt.Sprintf("network[%d].bandwidth: no network interface found to shape", i))
			continue
		}
		bps, _ := v1alpha1.ParseBandwidth(r.Bandwidth) // validated already
		rate := strconv.FormatUint(bps, 10) + "bit"
		class := shapeHandle + strconv.Itoa(10+i)
		// Egress: the remote address and port. Ingress: the remote address
		// and our local port, as in the iptables rules.
		if r.Direction != v1alpha1.DirectionIngress {
			refused = append(refused, egress.shapeRule(i, rules[i].to, class, rate, "dst", ipv6)...)
		}
		if r.Direction == v1alpha1.DirectionIngress || r.Direction == v1alpha1.DirectionBoth {
			refused = append(refused, ingress.shapeRule(i, rules[i].to, class, rate, "src", ipv6)...)
		}
		active = true
	}
	for _, d := range []*shapeDev{egress, ingress} {
		if len(d.classes) == 0 {
			continue
		}
		if d == ingress {
			cmds = append(cmds,
				[]string{"ip", "link", "add", IFBDevice, "type", "ifb"},
				[]string{"ip", "link", "set", IFBDevice, "up"},
				[]string{"tc", "qdisc", "add", "dev", iface, "handle", "ffff:", "ingress"},
				[]string{"tc", "filter", "add", "dev", iface, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
					"action", "mirred", "egress", "redirect", "dev", IFBDevice})
		}
		cmds = append(cmds,
			[]string{"tc", "qdisc", "replace", "dev", d.name, "root", "handle", shapeHandle, "htb", "default", "1"},
			[]string{"tc", "class", "add", "dev", d.name, "parent", shapeHandle, "classid", shapeHandle + "1", "htb", "rate", defaultRate})
		cmds = append(cmds, d.classes...)
		cmds = append(cmds, d.filters...)
	}
	return cmds, active, refused
}

// shapeRule adds rule i's class and a u32 filter per destination (addrSel:
// dst on egress, src on ingress; the port is always ours or theirs as
// dport, as in the iptables rules). IPv6 destinations get ip6 filters; no
// destination means every packet of either family.
func (d *shapeDev) shapeRule(i int, targets []v1alpha1.Target, class, rate, addrSel string, ipv6 bool) (refused []string) {
	d.classes = append(d.classes, []string{"tc", "class", "add", "dev", d.name, "parent", shapeHandle, "classid", class,
		"htb", "rate", rate, "ceil", rate})
	if len(targets) == 0 {
		proto, prio := "ip", "1"
		if ipv6 {
			proto, prio = "all", "3"
		}
		d.filters = append(d.filters, []string{"tc", "filter", "add", "dev", d.name, "parent", shapeHandle,
			"protocol", proto, "prio", prio, "u32", "match", "u32", "0", "0", "flowid", class})
	}
	for _, t := range targets {
		fams := []string{"ip"}
		switch {
		case t.Prefix.IsValid() && !t.Prefix.Addr().Is4() && !ipv6:
			refused = append(refused, fmt.Sprintf("network[%d].to: %s: this pod has no IPv6 (or no usable ip6tables)", i, t))
			continue
		case t.Prefix.IsValid() && !t.Prefix.Addr().Is4():
			fams = []string{"ip6"}
		case !t.Prefix.IsValid() && ipv6:
			fams = append(fams, "ip6") // a port or protocol of any address
		}
		for _, fam := range fams {
			d.filters = append(d.filters, append(u32Filter(d.name, fam, addrSel, t), "flowid", class))
		}
	}
	return refused
}

// u32Filter matches t in family fam (ip or ip6) on dev. Filters of one
// priority share one protocol (the kernel refuses a mix), so IPv4's are
// priority 1, IPv6's 2 and those of any family 3.
func u32Filter(dev, fam, addrSel string, t v1alpha1.Target) []string {
	proto, prio := "ip", "1"
	if fam == "ip6" {
		proto, prio = "ipv6", "2"
	}
	f := []string{"tc", "filter", "add", "dev", dev, "parent", shapeHandle, "protocol", proto, "prio", prio, "u32"}
	if t.Prefix.IsValid() {
		f = append(f, "match", fam, addrSel, t.Prefix.String())
	}
	if t.Protocol != "" {
		f = append(f, "match", fam, "protocol", map[string]string{"tcp": "6", "udp": "17"}[t.Protocol], "0xff")
	}
	if t.Port != 0 {
		f = append(f, "match", fam, "dport", strconv.Itoa(int(t.Port)), "0xffff")
	}
	if len(f) == 12 {
		f = append(f, "match", "u32", "0", "0")
	}
	return f
}

// applyShaping installs plan.Shape on a clean slate, refusing to replace a
// root qdisc another owner installed. A plan without shaping costs nothing:
// leftovers from a crash are the start-up Remove's job.
func applyShaping(ctx context.Context, r Runner, plan Plan) error {
	if len(plan.Shape) == 0 {
		return nil
	}
	out, err := r.Run(ctx, nil, "tc", "qdisc", "show")
	if err != nil {
		return fmt.Errorf("reading qdiscs: %w", err)
	}
	if err := removeShapingFrom(ctx, r, plan.Interface, string(out)); err != nil {
		return err
	}
	if kind, handle := rootKind(string(out), plan.Interface); kind != "" && handle != shapeHandle && !isDefault(kind) {
		return fmt.Errorf("interface %s has a %s root qdisc owned by someone else: bandwidth faults would replace it, so they are not applied", plan.Interface, kind)
	}
	// One process per tool: ip for the IFB device, tc for the rest.
	var ipCmds, tcCmds strings.Builder
	for _, c := range plan.Shape {
		line := strings.Join(c[1:], " ") + "\n"
		if c[0] == "ip" {
			ipCmds.WriteString(line)
		} else {
			tcCmds.WriteString(line)
		}
	}
	if ipCmds.Len() > 0 {
		if _, err := r.Run(ctx, []byte(ipCmds.String()), "ip", "-batch", "-"); err != nil {
			return fmt.Errorf("shaping: %w", err)
		}
	}
	if _, err := r.Run(ctx, []byte(tcCmds.String()), "tc", "-batch", "-"); err != nil {
		return fmt.Errorf("shaping: %w", err)
	}
	return nil
}

// removeShaping deletes faultline's qdiscs and IFB device, if present.
func removeShaping(ctx context.Context, r Runner, iface string) error {
	if iface == "" {
		return nil
	}
	out, err := r.Run(ctx, nil, "tc", "qdisc", "show")
	if err != nil {
		return fmt.Errorf("reading qdiscs: %w", err)
	}
	return removeShapingFrom(ctx, r, iface, string(out))
}

// removeShapingFrom works from a `tc qdisc show` listing of every device.
// The IFB device shows up there because faultline always gives it a qdisc.
func removeShapingFrom(ctx context.Context, r Runner, iface, qdiscs string) error {
	if iface == "" {
		return nil
	}
	var del strings.Builder
	if strings.Contains(qdiscs, "qdisc htb "+shapeHandle+" dev "+iface+" root") {
		del.WriteString("qdisc del dev " + iface + " root\n")
	}
	ifb := strings.Contains(qdiscs, " dev "+IFBDevice+" ")
	// The ingress qdisc only exists to feed our IFB device.
	if ifb && strings.Contains(qdiscs, "qdisc ingress ffff: dev "+iface+" ") {
		del.WriteString("qdisc del dev " + iface + " ingress\n")
	}
	if del.Len() > 0 {
		if _, err := r.Run(ctx, []byte(del.String()), "tc", "-batch", "-"); err != nil {
			return fmt.Errorf("removing shaping: %w", err)
		}
	}
	if ifb {
		if _, err := r.Run(ctx, nil, "ip", "link", "del", IFBDevice); err != nil {
			return fmt.Errorf("removing %s: %w", IFBDevice, err)
		}
	}
	return nil
}

// rootKind is the kind and handle of iface's root qdisc in a `tc qdisc
// show` listing.
func rootKind(show, iface string) (kind, handle string) {
	for _, line := range strings.Split(show, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == "qdisc" && f[3] == "dev" && f[4] == iface && f[5] == "root" {
			return f[1], f[2]
		}
	}
	return "", ""
}

func isDefault(kind string) bool {
	for _, k := range defaultQdiscs {
		if k == kind {
			return true
		}
	}
	return false
}

// DefaultInterface is the interface of the default route, which is what a
// pod's traffic leaves by.
func DefaultInterface(ctx context.Context, r Runner) string {
	out, err := r.Run(ctx, nil, "ip", "-o", "route", "show", "default")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			return f[i+1]
		}
	}
	return ""
}
