package policy

import (
	"fmt"
	"math"

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
