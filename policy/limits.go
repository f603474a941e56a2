package policy

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// violations lists, in words naming the field and the limit, every way spec
// goes beyond l. A fault kind without a limit is not allowed at all.
func violations(spec *v1alpha1.FaultSpec, l v1alpha1.Limits) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	// atMost checks one requested value against one upper limit.
	atMost := func(field, v, limitName, limit string, within func(v, limit string) bool) {
		switch {
		case v == "":
		case limit == "":
			bad("%s is not allowed (no %s)", field, limitName)
		case !within(v, limit):
			bad("%s %s exceeds %s %s", field, v, limitName, limit)
		}
	}
	durWithin := func(v, limit string) bool {
		got, err1 := v1alpha1.ParseDuration(v)
		max, err2 := v1alpha1.ParseDuration(limit)
		return err1 == nil && err2 == nil && got <= max
	}
	pctWithin := func(v, limit string) bool {
		got, err1 := v1alpha1.ParsePercent(v)
		max, err2 := v1alpha1.ParsePercent(limit)
		return err1 == nil && err2 == nil && got <= max
	}
	dur := func(field, v, limitName, limit string) { atMost(field, v, limitName, limit, durWithin) }
	pct := func(field, v, limitName, limit string) { atMost(field, v, limitName, limit, pctWithin) }
	for i, r := range spec.Network {
		f := func(name string) string { return fmt.Sprintf("network[%d].%s", i, name) }
		dur(f("delay"), r.Delay, "maxDelay", l.MaxDelay)
		dur(f("jitter"), r.Jitter, "maxJitter", l.MaxJitter)
		pct(f("loss"), r.Loss, "maxLoss", l.MaxLoss)
		// Duplication, corruption and reordering count against maxLoss:
		// each damages packets the way loss does.
		pct(f("duplicate"), r.Duplicate, "maxLoss", l.MaxLoss)
		pct(f("corrupt"), r.Corrupt, "maxLoss", l.MaxLoss)
		pct(f("reorder"), r.Reorder, "maxLoss", l.MaxLoss)
		if r.Bandwidth != "" {
			if l.MinBandwidth == "" {
				bad("%s is not allowed (no minBandwidth)", f("bandwidth"))
			} else {
				got, err1 := v1alpha1.ParseBandwidth(r.Bandwidth)
				min, err2 := v1alpha1.ParseBandwidth(l.MinBandwidth)
				if err1 != nil || err2 != nil || got < min {
					bad("%s %s is below minBandwidth %s", f("bandwidth"), r.Bandwidth, l.MinBandwidth)
				}
			}
		}
		if r.Partition && !l.Partition {
			bad("%s is not allowed (limits.partition is false)", f("partition"))
		}
		if r.Reset && !l.Reset {
			bad("%s is not allowed (limits.reset is false)", f("reset"))
		}
	}
	out = append(out, combined(spec, l)...)
	out = append(out, httpViolations(spec.HTTP, l.HTTP)...)
	if spec.DNS != nil {
		pct("dns.percent", spec.DNS.Percent, "maxDNSPercent", l.MaxDNSPercent)
	}
	if c := spec.Clock; c != nil {
		// Signed values: the limit bounds their magnitude.
		atMost("clock.offset", c.Offset, "maxClockOffset", l.MaxClockOffset, func(v, limit string) bool {
			got, err1 := v1alpha1.ParseSignedDuration(v)
			max, err2 := v1alpha1.ParseDuration(limit)
			return err1 == nil && err2 == nil && got <= max && -got <= max
		})
		atMost("clock.drift", c.Drift, "maxClockDrift", l.MaxClockDrift, func(v, limit string) bool {
			got, err1 := v1alpha1.ParseDrift(v)
			max, err2 := v1alpha1.ParseDrift(limit)
			return err1 == nil && err2 == nil && math.Abs(got) <= max
		})
	}
	return out
}

// httpViolations checks each HTTP rule on its own: the proxy lets the
// first matching rule decide a request, so rules never compound.
func httpViolations(rules []v1alpha1.HTTPFault, l *v1alpha1.HTTPLimits) []string {
	var out []string
	for i, r := range rules {
		f := func(name string) string { return fmt.Sprintf("http[%d]%s", i, name) }
		if l == nil {
			out = append(out, fmt.Sprintf("%s is not allowed (no limits.http)", f("")))
			continue
		}
		for _, port := range httpPorts(r) {
			switch {
			case len(l.Ports) == 0:
			case port == 0:
				out = append(out, fmt.Sprintf("%s names every port of a destination; limits.http.ports allows only %v", f(".to"), l.Ports))
			case !slices.Contains(l.Ports, port):
				out = append(out, fmt.Sprintf("%s port %d is not in limits.http.ports %v", f(""), port, l.Ports))
			}
		}
		if d := r.Delay; d != nil {
			got, err1 := v1alpha1.ParseDuration(d.Fixed)
			max, err2 := v1alpha1.ParseDuration(l.MaxDelay)
			switch {
			case l.MaxDelay == "":
				out = append(out, fmt.Sprintf("%s is not allowed (no limits.http.maxDelay)", f(".delay")))
			case err1 != nil || err2 != nil || got > max:
				out = append(out, fmt.Sprintf("%s %s exceeds limits.http.maxDelay %s", f(".delay.fixed"), d.Fixed, l.MaxDelay))
			}
		}
		if a := r.Abort; a != nil {
			pct := a.Percent
			if pct == "" {
				pct = "100%"
			}
			got, err1 := v1alpha1.ParsePercent(pct)
			max, err2 := v1alpha1.ParsePercent(l.MaxAbortPercent)
			switch {
			case l.MaxAbortPercent == "":
				out = append(out, fmt.Sprintf("%s is not allowed (no limits.http.maxAbortPercent)", f(".abort")))
			case err1 != nil || err2 != nil || got > max+1e-9:
				out = append(out, fmt.Sprintf("%s %s exceeds limits.http.maxAbortPercent %s", f(".abort.percent"), pct, l.MaxAbortPercent))
			}
		}
	}
	return out
}

// httpPorts are the ports a rule reads; 0 stands for every port.
func httpPorts(r v1alpha1.HTTPFault) []int32 {
	if r.Direction == v1alpha1.HTTPInbound {
		return []int32{r.Port}
	}
	var out []int32
	for _, s := range r.To {
		t, err := v1alpha1.ParseTarget(s)
		if err == nil {
			out = append(out, int32(t.Port))
		}
	}
	return out
}

// combined bounds what the rules add up to, not only each rule: the rules
// may match the same packets (a tenant split 50% loss into 16 rules of
// about 5% each, all admitted under maxLoss 5%). Packet damage compounds as
// 1 − Π(1 − pᵢ) over every loss, duplicate, corrupt and reorder of every
// rule; delays and jitters add.
func combined(spec *v1alpha1.FaultSpec, l v1alpha1.Limits) []string {
	if len(spec.Network) < 2 {
		return nil // the per-rule checks said it all
	}
	var out []string
	pass, damaging := 1.0, 0
	var delay, jitter time.Duration
	for _, r := range spec.Network {
		for _, v := range []string{r.Loss, r.Duplicate, r.Corrupt, r.Reorder} {
			if p, err := v1alpha1.ParsePercent(v); err == nil && v != "" {
				pass *= 1 - p
				damaging++
			}
		}
		if d, err := v1alpha1.ParseDuration(r.Delay); err == nil && r.Delay != "" {
			delay += d
		}
		if j, err := v1alpha1.ParseDuration(r.Jitter); err == nil && r.Jitter != "" {
			jitter += j
		}
	}
	if max, err := v1alpha1.ParsePercent(l.MaxLoss); err == nil && l.MaxLoss != "" && damaging > 1 && 1-pass > max+1e-9 {
		out = append(out, fmt.Sprintf("network: the rules together drop or damage %.2f%% of packets (1 − Π(1 − p) over %d values), more than maxLoss %s", 100*(1-pass), damaging, l.MaxLoss))
	}
	if max, err := v1alpha1.ParseDuration(l.MaxDelay); err == nil && l.MaxDelay != "" && delay > max {
		out = append(out, fmt.Sprintf("network: the rules' delays add up to %s, more than maxDelay %s", delay, l.MaxDelay))
	}
	if max, err := v1alpha1.ParseDuration(l.MaxJitter); err == nil && l.MaxJitter != "" && jitter > max {
		out = append(out, fmt.Sprintf("network: the rules' jitters add up to %s, more than maxJitter %s", jitter, l.MaxJitter))
	}
	return out
}
