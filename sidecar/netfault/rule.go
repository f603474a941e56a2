package netfault

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ruleBuild turns one NetworkRule into iptables rules for faultline's
// output and input chains, the queues the agent serves, and the parts it
// refuses on this kernel. Each step below is one kind of rule, in the order
// the chains need them: excepts first, then what stops packets, then what
// delays them.
type ruleBuild struct {
	where           string // network[i]
	i               int
	r               *v1alpha1.NetworkRule
	caps            Capabilities
	kinds           map[string]bool
	egress, ingress bool
	ch              *families
	refused         []string
	delay, drop     *DelayRule
}

// needsTargets: the rule makes iptables rules or tc filters, so its
// destinations must parse.
func needsTargets(r *v1alpha1.NetworkRule) bool {
	return r.Partition || r.Reset || r.Loss != "" || r.Delay != "" || r.Corrupt != "" || r.Bandwidth != ""
}

func buildRule(i int, r *v1alpha1.NetworkRule, dests resolvedRule, caps Capabilities, kinds map[string]bool, ch *families) (refused []string, queues []DelayRule) {
	b := &ruleBuild{where: fmt.Sprintf("network[%d]", i), i: i, r: r, caps: caps, kinds: kinds, ch: ch,
		egress:  r.Direction != v1alpha1.DirectionIngress,
		ingress: r.Direction == v1alpha1.DirectionIngress || r.Direction == v1alpha1.DirectionBoth}
	b.engine()
	slices.Sort(b.refused)
	if !r.Partition && !r.Reset && r.Loss == "" && b.delay == nil {
		return b.refused, nil
	}
	targets, excepts := b.targets(dests)
	if len(targets) == 0 {
		return b.refused, nil
	}
	for _, e := range excepts {
		b.except(e)
	}
	b.egressDrop(targets)
	for _, t := range targets {
		switch {
		case r.Reset:
			b.reset(t)
		case r.Partition:
			b.partition(t)
		case r.Loss != "":
			b.loss(t)
		}
	}
	b.delayQueue(targets)
	for _, q := range []*DelayRule{b.delay, b.drop} {
		if q != nil {
			queues = append(queues, *q)
		}
	}
	return b.refused, queues
}

func (b *ruleBuild) refuse(field, why string) {
	b.refused = append(b.refused, b.where+"."+field+": "+why)
}

// emit appends action for every match, to the input chain or the output,
// of the match's family; a match of any address goes to both families
// when the pod has IPv6.
func (b *ruleBuild) emit(in bool, ms []match, action string) {
	for _, m := range ms {
		for f := range b.ch {
			if (m.fam == 4 && f != 0) || (m.fam == 6 && f != 1) || (f == 1 && !b.caps.IPv6) {
				continue
			}
			c := &b.ch[f]
			if in {
				c.in = append(c.in, m.join(action))
			} else {
				c.out = append(c.out, m.join(action))
			}
		}
	}
}

// engine reads what the NFQUEUE delay engine does for the rule, or refuses
// it. The engine is used on every kernel, netem or not: one path for delay,
// jitter shapes, correlation, reorder, corrupt and duplicate, tested here
// (this machine's kernel has no netem).
func (b *ruleBuild) engine() {
	r := b.r
	if r.Delay == "" && r.Corrupt == "" && r.Duplicate == "" {
		return
	}
	if !b.caps.NFQueue {
		for field, v := range map[string]string{"delay": r.Delay, "corrupt": r.Corrupt, "reorder": r.Reorder, "duplicate": r.Duplicate} {
			if v != "" {
				b.refuse(field, "this kernel has no NFQUEUE support for the delay engine")
			}
		}
		return
	}
	d := &DelayRule{Queue: uint16(QueueBase + b.i), Dist: r.Distribution}
	// Validated already: the parses cannot fail.
	d.Delay, _ = v1alpha1.ParseDuration(r.Delay)
	d.Jitter, _ = v1alpha1.ParseDuration(r.Jitter)
	d.Correlation, _ = v1alpha1.ParsePercent(r.Correlation)
	d.Reorder, _ = v1alpha1.ParsePercent(r.Reorder)
	d.Gap = int(r.Gap)
	d.Corrupt, _ = v1alpha1.ParsePercent(r.Corrupt)
	d.Duplicate, _ = v1alpha1.ParsePercent(r.Duplicate)
	b.delay = d
}

// targets are the rule's destinations (IPv6 ones refused when the pod has
// no IPv6);
// no destination means every one (an empty Target), unless every
// destination named was refused.
func (b *ruleBuild) targets(d resolvedRule) (targets, excepts []v1alpha1.Target) {
	v6 := func(t v1alpha1.Target) bool { return t.Prefix.IsValid() && !t.Prefix.Addr().Is4() }
	targets = slices.DeleteFunc(slices.Clone(d.to), func(t v1alpha1.Target) bool {
		if v6(t) && !b.caps.IPv6 {
			b.refuse("to", t.String()+": this pod has no IPv6 (or no usable ip6tables)")
			return true
		}
		return false
	})
	excepts = slices.Clone(d.except)
	if !b.caps.IPv6 {
		excepts = slices.DeleteFunc(excepts, v6)
	}
	if len(targets) == 0 && len(b.r.To) == 0 {
		targets = []v1alpha1.Target{{}}
	}
	return targets, excepts
}

// except RETURNs before this rule's faults. A RETURN leaves faultline's
// chain, so the address is also spared by later rules: "never touched".
func (b *ruleBuild) except(e v1alpha1.Target) {
	b.emit(false, egressMatches(e), "-j RETURN")
	b.emit(true, egressReplyMatches(e), "-j RETURN")
	b.emit(true, ingressMatches(e), "-j RETURN")
}

// egressDrop: egress loss and partition stop the packets going out. A DROP
// in OUTPUT would hand EPERM back to the sender, so they go through a queue
// whose verdicts drop them later, silently (UDP included; a TCP connect
// times out); --queue-bypass: if the agent is gone they pass. Without
// NFQUEUE only the replies are dropped, and the status says so.
func (b *ruleBuild) egressDrop(targets []v1alpha1.Target) {
	r := b.r
	if !b.egress || r.Reset || (!r.Partition && r.Loss == "") {
		return
	}
	if !b.caps.NFQueue {
		field := map[bool]string{true: "partition", false: "loss"}[r.Partition]
		b.refuse(field, "egress: this kernel has no NFQUEUE, so only the target's packets to us are dropped; one-way traffic to it is untouched")
		return
	}
	p := 1.0
	if !r.Partition {
		p, _ = v1alpha1.ParsePercent(r.Loss) // validated already
	}
	b.drop = &DelayRule{Queue: uint16(DropQueueBase + b.i), Drop: p}
	for _, t := range targets {
		b.emit(false, egressMatches(t), queueAction(b.drop.Queue))
	}
}

func queueAction(q uint16) string {
	return "-j NFQUEUE --queue-num " + strconv.Itoa(int(q)) + " --queue-bypass"
}

// onlyProto narrows matches to one protocol (a TCP RST means nothing to
// the others); a match with no protocol becomes one for proto.
func onlyProto(ms []match, proto string) []match {
	var out []match
	for _, m := range ms {
		if m.proto == "" || m.proto == proto {
			m.proto = proto
			out = append(out, m)
		}
	}
	return out
}

// reset refuses connections with a TCP RST, at once. A locally generated
// SYN rejected in OUTPUT is answered by a RST to our own socket: connect()
// is refused at once. With partition, UDP replies are dropped too.
func (b *ruleBuild) reset(t v1alpha1.Target) {
	b.kinds["reset"] = true
	const rst = "-j REJECT --reject-with tcp-reset"
	if b.egress {
		b.emit(false, onlyProto(egressMatches(t), "tcp"), rst)
		if b.r.Partition {
			b.emit(true, onlyProto(egressReplyMatches(t), "udp"), "-j DROP")
		}
	}
	if b.ingress {
		b.emit(true, onlyProto(ingressMatches(t), "tcp"), rst)
	}
}

// partition cuts both ways, silently like a real partition: what we send
// goes through the drop queue (egressDrop), what the target sends us is
// dropped here, so connect() times out instead of failing with EPERM, and
// the target sees nothing (no half-open).
func (b *ruleBuild) partition(t v1alpha1.Target) {
	b.kinds["partition"] = true
	if b.egress {
		b.emit(true, egressReplyMatches(t), "-j DROP")
	}
	if b.ingress {
		b.emit(true, ingressMatches(t), "-j DROP")
	}
}

// loss drops at random. Egress loss goes through the drop queue; without
// NFQUEUE it drops the inbound half (the target's packets to us): each
// round trip is still lost with the probability.
func (b *ruleBuild) loss(t v1alpha1.Target) {
	b.kinds["loss"] = true
	frac, _ := v1alpha1.ParsePercent(b.r.Loss) // validated already
	stat := "-m statistic --mode random --probability " + strconv.FormatFloat(frac, 'f', 6, 64) + " -j DROP"
	if b.egress && b.drop == nil {
		b.emit(true, egressReplyMatches(t), stat)
	}
	if b.ingress {
		b.emit(true, ingressMatches(t), stat)
	}
}

// delayQueue queues what comes back from the target (egress) or what the
// peer sends us (ingress): the round trip grows by the delay, and
// --queue-bypass lets traffic through if the agent is gone.
func (b *ruleBuild) delayQueue(targets []v1alpha1.Target) {
	if b.delay == nil {
		return
	}
	b.kinds["delay"] = b.kinds["delay"] || b.delay.Delay > 0
	b.kinds["corrupt"] = b.kinds["corrupt"] || b.delay.Corrupt > 0
	b.kinds["duplicate"] = b.kinds["duplicate"] || b.delay.Duplicate > 0
	q := queueAction(b.delay.Queue)
	for _, t := range targets {
		if b.egress {
			b.emit(true, egressReplyMatches(t), q)
		}
		if b.ingress {
			b.emit(true, ingressMatches(t), q)
		}
	}
}
