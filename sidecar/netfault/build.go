package netfault

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/dnsfault"
)

// Chain names. Everything faultline adds lives in these chains, reached by
// one jump from the built-in chain, so finding and removing it is exact.
const (
	ChainOut = "FAULTLINE-OUTPUT"
	ChainIn  = "FAULTLINE-INPUT"
	// ChainDNS (nat table) is where agents before the DNS queue
	// redirected queries; Apply and Remove still clear it on upgrade.
	ChainDNS = "FAULTLINE-DNS"
	// ChainDNSQueue (mangle table) sends DNS queries to the agent's queue.
	ChainDNSQueue = "FAULTLINE-DNS-QUEUE"
	// Comment marks faultline's jump rules in the built-in chains.
	Comment = "faultline"
)

// Capabilities are what the kernel in the pod's netns can do (Probe).
type Capabilities struct {
	Netem bool `json:"netem"`
	// NFQueue: the in-agent delay engine could run.
	NFQueue bool `json:"nfqueue"`
	// IPv6: the pod's network namespace has IPv6, so faults are written
	// for both families.
	IPv6 bool `json:"ipv6"`
}

// Options are what the builder needs besides the spec.
type Options struct {
	// Backend is the iptables backend to write (DetectBackend); "" is nft.
	Backend Backend
	// Exempt is the pod's traffic that no fault touches.
	Exempt Exemptions
	// APIServer addresses are exempt unless a rule names them.
	APIServer []netip.Prefix
	// Resolve maps a host name in a rule to its current addresses.
	Resolve func(host string) ([]netip.Addr, error)
	Caps    Capabilities
	// Interface is shaped for bandwidth faults (the default route's).
	Interface string
	// HTTP is where the agent's HTTP proxy listens, for http rules.
	HTTP HTTPProxy
}

// Exemptions: the agent's own port for everyone; the kubelet's probe ports
// only for the kubelet. A probe port is usually the port the app serves on
// (readiness on :8080/ready): exempting it for everyone would exempt every
// client from every fault on it, which a real node showed.
type Exemptions struct {
	// Ports are local ports never touched, whoever talks to them.
	Ports []int32
	// ProbePorts are the kubelet's probe ports, exempt for traffic with
	// ProbeSources (the node's address and the pod's gateway: where the
	// kubelet's probes come from). Without ProbeSources the probe ports
	// are exempt for everyone: probes must never fail because of faultline.
	ProbePorts   []int32
	ProbeSources []netip.Addr
}

// Plan is the builder's output: what to apply, and what could not be.
type Plan struct {
	// Restore is the iptables-restore --noflush payload for the filter
	// table; declaring the chains flushes them, so it replaces, never adds.
	// Restore6 is ip6tables' ("" when the pod has no IPv6).
	Restore, Restore6 string
	// RestoreMangle is the mangle table's payload (the DNS queue), or
	// empty; RestoreMangle6 is ip6tables'.
	RestoreMangle, RestoreMangle6 string
	// RestoreNat is the nat table's payload (http rules' redirects to the
	// proxy), or empty; RestoreNat6 is ip6tables'.
	RestoreNat, RestoreNat6 string
	// HTTPTo are the destinations of each http rule, resolved with the
	// rest of the plan, for the proxy to tell the rules' connections
	// apart; nil for a rule left out.
	HTTPTo [][]v1alpha1.Target
	// AliveTTL is how long the faults outlive the last keep-alive when the
	// Runner is a Switch; 0 means DefaultTTL.
	AliveTTL time.Duration
	// Backend is where the rules go (Options.Backend).
	Backend Backend
	// Refused lists faults this kernel or agent cannot apply, with why.
	Refused []string
	// Unresolved lists rules left out because a host in their to or except
	// did not resolve (a rule without its exception would be more chaos
	// than asked): the agent applies the rest and retries these.
	Unresolved []string
	// Active lists the fault kinds the payload applies.
	Active []string
	// Delays are the NFQUEUE engine's queues, when delay runs in the agent.
	Delays []DelayRule
	// Shape holds the tc/ip commands for bandwidth, run in order on a
	// clean slate; Interface is where.
	Shape     [][]string
	Interface string
}

// match is one iptables match for a target, in one direction; fam is 4 or
// 6 for an address of that family, 0 for any address (both families).
type match struct {
	fam   int
	addr  string // "-d 10.0.0.0/8" / "-s ..." or ""
	proto string // tcp, udp or "" for both
	port  string // "--dport 5432" / "--sport ..." or ""
}

// Build turns the spec's network rules into a plan. It is pure: the same
// inputs give the same payload byte for byte (golden-tested).
func Build(spec *v1alpha1.FaultSpec, o Options) (Plan, error) {
	p := Plan{Backend: o.Backend}
	var ch families
	if o.Caps.NFQueue && slices.ContainsFunc(spec.Network, func(r v1alpha1.NetworkRule) bool { return r.Duplicate != "" }) {
		// The engine's copies pass every faultline rule (duplicate.go).
		for i := range ch {
			ch[i].out, ch[i].in = append(ch[i].out, dupRule), append(ch[i].in, dupRule)
		}
	}
	ch.exempt(o)
	rules := resolveRules(spec, o.Resolve)
	named := namedPrefixes(rules)
	for _, pfx := range o.APIServer {
		if !slices.Contains(named, pfx) {
			f := ch.of(pfx.Addr())
			f.out = append(f.out, "-d "+pfx.String()+" -j RETURN")
			f.in = append(f.in, "-s "+pfx.String()+" -j RETURN")
		}
	}
	kinds := map[string]bool{}
	for i, r := range spec.Network {
		var ue *UnresolvedError
		if err := rules[i].err; errors.As(err, &ue) {
			// The rule waits for its host (a Service not created yet, a
			// typo): the others apply now, and the agent retries.
			p.Unresolved = append(p.Unresolved, err.Error())
			continue
		} else if err != nil && needsTargets(&r) {
			return Plan{}, err
		}
		refused, queues := buildRule(i, &r, rules[i], o.Caps, kinds, &ch)
		p.Delays = append(p.Delays, queues...)
		p.Refused = append(p.Refused, refused...)
	}
	nat := httpBuild(spec, o, &ch, &p, kinds)
	shape, shaped, shapeRefused := shaping(spec, rules, o.Interface, o.Caps.IPv6)
	p.Shape, p.Interface = shape, o.Interface
	p.Refused = append(p.Refused, shapeRefused...)
	kinds["bandwidth"] = shaped
	if spec.DNS != nil {
		p.RestoreMangle = dnsRules()
		if o.Caps.IPv6 {
			p.RestoreMangle6 = dnsRules() // the same rules read alike in ip6tables
		}
		kinds["dns"] = true
	}
	for _, k := range FaultKinds {
		if kinds[k] {
			p.Active = append(p.Active, k)
		}
	}
	p.Restore, p.RestoreNat = ch[0].payload(), nat[0].payload()
	if o.Caps.IPv6 {
		p.Restore6, p.RestoreNat6 = ch[1].payload(), nat[1].payload()
	}
	return p, nil
}

// chains are one address family's rules for faultline's output and input
// chains; families holds IPv4's and IPv6's, written by one builder.
type chains struct{ out, in []string }

type families [2]chains

// of is the family of a.
func (f *families) of(a netip.Addr) *chains {
	if a.Is4() {
		return &f[0]
	}
	return &f[1]
}

// exempt writes the exemptions, which come first: a RETURN ends faultline's
// chain for that packet. IPv6 also keeps neighbour and router discovery
// (ICMPv6), which a partition of everything would otherwise cut, and with
// it every IPv6 peer, exempt ones included.
func (f *families) exempt(o Options) {
	for _, t := range []string{"router-solicitation", "router-advertisement", "neighbour-solicitation", "neighbour-advertisement"} {
		f[1].in = append(f[1].in, "-p ipv6-icmp --icmpv6-type "+t+" -j RETURN")
		f[1].out = append(f[1].out, "-p ipv6-icmp --icmpv6-type "+t+" -j RETURN")
	}
	ex := o.Exempt
	global := ex.Ports
	if len(ex.ProbeSources) == 0 {
		global = append(slices.Clone(global), ex.ProbePorts...)
	}
	for _, port := range sortedPorts(global) {
		ps := strconv.Itoa(int(port))
		for i := range f {
			f[i].in = append(f[i].in, "-p tcp --dport "+ps+" -j RETURN")
			f[i].out = append(f[i].out, "-p tcp --sport "+ps+" -j RETURN")
		}
	}
	if len(ex.ProbeSources) == 0 {
		return
	}
	srcs := slices.Clone(ex.ProbeSources)
	slices.SortFunc(srcs, func(a, b netip.Addr) int { return a.Compare(b) })
	srcs = slices.Compact(srcs)
	for _, port := range sortedPorts(ex.ProbePorts) {
		ps := strconv.Itoa(int(port))
		for _, src := range srcs {
			src = src.Unmap()
			c, host := f.of(src), netip.PrefixFrom(src, src.BitLen()).String()
			c.in = append(c.in, "-s "+host+" -p tcp --dport "+ps+" -j RETURN")
			c.out = append(c.out, "-d "+host+" -p tcp --sport "+ps+" -j RETURN")
		}
	}
}

// payload is the family's iptables-restore input for the filter table.
func (c chains) payload() string {
	out, in := dedupe(c.out), dedupe(c.in)
	var b strings.Builder
	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ChainOut, ChainIn)
	for _, r := range out {
		fmt.Fprintf(&b, "-A %s %s\n", ChainOut, r)
	}
	for _, r := range in {
		fmt.Fprintf(&b, "-A %s %s\n", ChainIn, r)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func (m match) join(action string) string {
	var parts []string
	if m.addr != "" {
		parts = append(parts, m.addr)
	}
	if m.proto != "" {
		parts = append(parts, "-p "+m.proto)
	}
	if m.port != "" {
		parts = append(parts, m.port)
	}
	parts = append(parts, action)
	return strings.Join(parts, " ")
}

// egressMatches match packets we send to t (remote address and port).
func egressMatches(t v1alpha1.Target) []match {
	return withProtos(t, "-d", "--dport")
}

// egressReplyMatches match packets t sends back to us.
func egressReplyMatches(t v1alpha1.Target) []match {
	return withProtos(t, "-s", "--sport")
}

// ingressMatches match packets from peer t to our local port.
func ingressMatches(t v1alpha1.Target) []match {
	return withProtos(t, "-s", "--dport")
}

func withProtos(t v1alpha1.Target, addrFlag, portFlag string) []match {
	var addr string
	fam := 0
	if t.Prefix.IsValid() {
		addr, fam = addrFlag+" "+t.Prefix.String(), 4
		if !t.Prefix.Addr().Is4() {
			fam = 6
		}
	}
	if t.Port == 0 {
		return []match{{fam: fam, addr: addr, proto: t.Protocol}}
	}
	port := portFlag + " " + strconv.Itoa(int(t.Port))
	if t.Protocol != "" {
		return []match{{fam: fam, addr: addr, proto: t.Protocol, port: port}}
	}
	// A port needs a protocol in iptables: one line each.
	return []match{{fam, addr, "tcp", port}, {fam, addr, "udp", port}}
}

// UnresolvedError is a host name in a rule that did not resolve.
type UnresolvedError struct {
	Host string
	Err  error
}

func (e *UnresolvedError) Error() string { return "resolving " + e.Host + ": " + e.Err.Error() }
func (e *UnresolvedError) Unwrap() error { return e.Err }

// expand parses targets and resolves host names to one target per address.
func expand(raw []string, resolve func(string) ([]netip.Addr, error)) ([]v1alpha1.Target, error) {
	var out []v1alpha1.Target
	for _, s := range raw {
		t, err := v1alpha1.ParseTarget(s)
		if err != nil {
			return nil, err
		}
		if t.Host == "" {
			out = append(out, t)
			continue
		}
		if resolve == nil {
			return nil, fmt.Errorf("%s: no resolver", t.Host)
		}
		addrs, err := resolve(t.Host)
		if err != nil {
			return nil, &UnresolvedError{Host: t.Host, Err: err}
		}
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		for _, a := range addrs {
			c := t
			c.Host, c.Prefix = "", netip.PrefixFrom(a, a.BitLen())
			out = append(out, c)
		}
	}
	return out, nil
}

// resolvedRule is one rule's destinations, resolved once per Build: the
// iptables rules, the tc filters and the API server exemption then agree
// even when a name's addresses change while the plan is built.
type resolvedRule struct {
	to, except []v1alpha1.Target
	// err is an UnresolvedError (the rule waits for its host) or a target
	// that does not parse.
	err error
}

func resolveRules(spec *v1alpha1.FaultSpec, resolve func(string) ([]netip.Addr, error)) []resolvedRule {
	out := make([]resolvedRule, len(spec.Network))
	for i, r := range spec.Network {
		where := fmt.Sprintf("network[%d]", i)
		rr := &out[i]
		if rr.to, rr.err = expand(r.To, resolve); rr.err != nil {
			rr.err = fmt.Errorf("%s.to: %w", where, rr.err)
		} else if rr.except, rr.err = expand(r.Except, resolve); rr.err != nil {
			rr.err = fmt.Errorf("%s.except: %w", where, rr.err)
		}
	}
	return out
}

// namedPrefixes are addresses rules name explicitly, by address or by a
// name that resolves to it (kubernetes.default.svc names the API server
// as surely as its address does): they lift the API server exemption.
func namedPrefixes(rules []resolvedRule) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rules {
		for _, t := range r.to {
			if t.Prefix.IsValid() {
				out = append(out, t.Prefix)
			}
		}
	}
	return out
}

// dedupe drops repeated rules, keeping the first (order is semantics).
func dedupe(rules []string) []string {
	seen := map[string]bool{}
	out := rules[:0]
	for _, r := range rules {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func sortedPorts(p []int32) []int32 {
	s := slices.Clone(p)
	slices.Sort(s)
	return slices.Compact(s)
}

// FaultKinds are the kinds of network fault a plan can make active.
var FaultKinds = []string{"delay", "partition", "reset", "loss", "corrupt", "duplicate", "bandwidth", "dns", "http"}

// dnsRules queue the pod's UDP DNS queries to the agent (dnsfault), with
// --queue-bypass: with no agent reading, queries pass. Queries the agent
// sends itself carry dnsfault.Mark and are not queued.
func dnsRules() string {
	return fmt.Sprintf("*mangle\n:%[1]s - [0:0]\n-A %[1]s -m mark --mark 0x%[2]x -j RETURN\n"+
		"-A %[1]s -p udp --dport 53 -j NFQUEUE --queue-num %[3]d --queue-bypass\nCOMMIT\n",
		ChainDNSQueue, dnsfault.Mark, dnsfault.Queue)
}
