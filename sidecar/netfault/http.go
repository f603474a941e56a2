package netfault

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// HTTP faults: the nat table sends the connections an http rule reads to
// the agent's proxy (sidecar/httpfault), inbound from PREROUTING, outbound
// from OUTPUT. The jumps are gated by their own dead man's switch sets,
// whose entries last HTTPAliveTTL: a REDIRECT to a proxy that died refuses
// connections, so they must stop matching within a second, not five.
const (
	ChainHTTPIn  = "FAULTLINE-HTTP-IN"
	ChainHTTPOut = "FAULTLINE-HTTP-OUT"
	// HTTPMark is on the proxy's own sockets: the outbound chain lets them
	// pass instead of sending them back to the proxy.
	HTTPMark = 0x0fa17d02
)

// HTTPProxy is where the agent's proxy listens; zero ports mean there is
// no proxy (the init container) and http rules are refused.
type HTTPProxy struct {
	InPort, OutPort uint16
}

// httpGate puts the resets behind the HTTP switch as well: they belong to
// the redirects, and resetting the app's port after the redirects stopped
// (a dead agent) would be chaos nobody keeps alive.
var httpGate = [2]string{" -m set --match-set " + AliveSetHTTP + " dst", " -m set --match-set " + AliveSetHTTP6 + " dst"}

// natChains are one family's rules for the two HTTP chains.
type natChains struct{ in, out []string }

// httpBuild writes the nat rules, the filter rules that reset connections
// opened before the redirect (their next packet still goes to the old
// port; the client connects again, through the proxy), and each rule's
// resolved destinations for the proxy.
func httpBuild(spec *v1alpha1.FaultSpec, o Options, ch *families, p *Plan, kinds map[string]bool) [2]natChains {
	var nat [2]natChains
	if len(spec.HTTP) == 0 {
		return nat
	}
	p.HTTPTo = make([][]v1alpha1.Target, len(spec.HTTP))
	if o.HTTP.InPort == 0 || o.HTTP.OutPort == 0 {
		p.Refused = append(p.Refused, "http: needs the agent's proxy and the ipset that stops its redirects when the agent dies; this process has not both")
		return nat
	}
	fams := []int{0}
	if o.Caps.IPv6 {
		fams = append(fams, 1)
	}
	ex := o.Exempt
	global := slices.Clone(ex.Ports)
	if len(ex.ProbeSources) == 0 {
		global = append(global, ex.ProbePorts...)
	}
	for _, f := range fams {
		for _, port := range sortedPorts(global) {
			nat[f].in = append(nat[f].in, "-p tcp --dport "+strconv.Itoa(int(port))+" -j RETURN")
		}
		nat[f].out = append(nat[f].out, fmt.Sprintf("-m mark --mark 0x%x -j RETURN", HTTPMark), "-o lo -j RETURN")
	}
	for _, port := range sortedPorts(ex.ProbePorts) {
		for _, src := range ex.ProbeSources {
			src = src.Unmap()
			f := 0
			if src.Is6() {
				f = 1
			}
			nat[f].in = append(nat[f].in, "-s "+netip.PrefixFrom(src, src.BitLen()).String()+" -p tcp --dport "+strconv.Itoa(int(port))+" -j RETURN")
		}
	}
	var named []netip.Prefix
	resolved := make([][]v1alpha1.Target, len(spec.HTTP))
	for i, r := range spec.HTTP {
		if r.Direction != v1alpha1.HTTPOutbound {
			continue
		}
		ts, err := expand(r.To, o.Resolve)
		var ue *UnresolvedError
		if errors.As(err, &ue) {
			p.Unresolved = append(p.Unresolved, fmt.Sprintf("http[%d].to: %v", i, err))
			continue
		}
		resolved[i] = ts
		for _, t := range ts {
			named = append(named, t.Prefix)
		}
	}
	for _, pfx := range o.APIServer {
		if !slices.Contains(named, pfx) {
			f := 0
			if !pfx.Addr().Is4() {
				f = 1
			}
			nat[f].out = append(nat[f].out, "-d "+pfx.String()+" -j RETURN")
		}
	}
	for i, r := range spec.HTTP {
		where := fmt.Sprintf("http[%d]", i)
		if r.Direction == v1alpha1.HTTPInbound {
			port := uint16(r.Port)
			switch {
			case slices.Contains(ex.Ports, r.Port):
				p.Refused = append(p.Refused, fmt.Sprintf("%s.port: %d is the agent's own port", where, port))
				continue
			case len(ex.ProbeSources) == 0 && slices.Contains(ex.ProbePorts, r.Port):
				p.Refused = append(p.Refused, fmt.Sprintf("%s.port: %d is a probe port and where the kubelet's probes come from is unknown: probes must not go through the proxy", where, port))
				continue
			}
			ps := strconv.Itoa(int(port))
			for _, f := range fams {
				nat[f].in = append(nat[f].in, "-p tcp --dport "+ps+" -j REDIRECT --to-ports "+strconv.Itoa(int(o.HTTP.InPort)))
				// Not the proxy's own connection to the app, over loopback.
				ch[f].in = append(ch[f].in, "! -i lo -p tcp --dport "+ps+httpGate[f]+" -j REJECT --reject-with tcp-reset")
			}
			p.HTTPTo[i] = []v1alpha1.Target{{Port: port, Protocol: "tcp"}}
			kinds["http"] = true
			continue
		}
		for _, t := range resolved[i] {
			m := match{addr: "", proto: "tcp"}
			if t.Prefix.IsValid() {
				m.addr, m.fam = "-d "+t.Prefix.String(), 4
				if !t.Prefix.Addr().Is4() {
					m.fam = 6
				}
			}
			if m.fam == 6 && !o.Caps.IPv6 {
				p.Refused = append(p.Refused, fmt.Sprintf("%s.to: %s: this pod has no IPv6 (or no usable ip6tables)", where, t))
				continue
			}
			if t.Port != 0 {
				m.port = "--dport " + strconv.Itoa(int(t.Port))
			}
			for _, f := range fams {
				if (m.fam == 4 && f != 0) || (m.fam == 6 && f != 1) {
					continue
				}
				nat[f].out = append(nat[f].out, m.join("-j REDIRECT --to-ports "+strconv.Itoa(int(o.HTTP.OutPort))))
				// Not over loopback: the redirect leaves it alone too.
				ch[f].out = append(ch[f].out, m.join(fmt.Sprintf("! -o lo -m mark ! --mark 0x%x%s -j REJECT --reject-with tcp-reset", HTTPMark, httpGate[f])))
			}
			t.Protocol = "tcp"
			p.HTTPTo[i] = append(p.HTTPTo[i], t)
			kinds["http"] = true
		}
	}
	return nat
}

// payload is the family's nat table, or "" when no http rule applies.
func (c natChains) payload() string {
	redirects := func(r string) bool { return strings.Contains(r, "-j REDIRECT") }
	if !slices.ContainsFunc(c.in, redirects) && !slices.ContainsFunc(c.out, redirects) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n:%s - [0:0]\n", ChainHTTPIn, ChainHTTPOut)
	for _, r := range dedupe(c.in) {
		fmt.Fprintf(&b, "-A %s %s\n", ChainHTTPIn, r)
	}
	for _, r := range dedupe(c.out) {
		fmt.Fprintf(&b, "-A %s %s\n", ChainHTTPOut, r)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
