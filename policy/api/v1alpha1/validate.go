package v1alpha1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	maxRules   = 16
	maxTargets = 64
	maxHosts   = 64
)

// Validate checks every value; p is the path the spec lives at (nil for an
// annotation, "spec" for a FaultProfile).
func (s *FaultSpec) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Network) == 0 && s.DNS == nil && s.Clock == nil && len(s.HTTP) == 0 {
		errs = append(errs, field.Required(p, "at least one of network, dns, clock, http"))
	}
	if len(s.Network) > maxRules {
		errs = append(errs, field.TooMany(p.Child("network"), len(s.Network), maxRules))
	}
	for i := range s.Network {
		errs = append(errs, s.Network[i].validate(p.Child("network").Index(i))...)
	}
	if s.DNS != nil {
		errs = append(errs, s.DNS.validate(p.Child("dns"))...)
	}
	if s.Clock != nil {
		errs = append(errs, s.Clock.validate(p.Child("clock"))...)
	}
	errs = append(errs, validateHTTP(p.Child("http"), s.HTTP)...)
	if s.Schedule != nil {
		errs = append(errs, s.Schedule.validate(p.Child("schedule"))...)
	}
	return errs
}

func (r *NetworkRule) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(name, v string, parse func(string) error) {
		if v == "" {
			return
		}
		if err := parse(v); err != nil {
			errs = append(errs, field.Invalid(p.Child(name), v, err.Error()))
		}
	}
	percent := func(v string) error { _, err := ParsePercent(v); return err }
	check("delay", r.Delay, func(v string) error {
		d, err := ParseDuration(v)
		if err == nil && (d <= 0 || d > MaxDelay) {
			err = fmt.Errorf("want %s, more than 0 and at most %s", formDuration, MaxDelay)
		}
		return err
	})
	check("jitter", r.Jitter, func(v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		if r.Delay == "" {
			return fmt.Errorf("jitter needs delay")
		}
		if delay, derr := ParseDuration(r.Delay); derr == nil && d > delay {
			return fmt.Errorf("want %s no larger than delay (%s)", formDuration, r.Delay)
		}
		return nil
	})
	check("correlation", r.Correlation, func(v string) error {
		if r.Delay == "" && r.Loss == "" {
			return fmt.Errorf("correlation needs delay or loss")
		}
		return percent(v)
	})
	for name, v := range map[string]string{"loss": r.Loss, "duplicate": r.Duplicate, "corrupt": r.Corrupt} {
		check(name, v, percent)
	}
	check("reorder", r.Reorder, func(v string) error {
		if r.Delay == "" {
			return fmt.Errorf("reorder needs delay: reordered packets are the ones sent without it")
		}
		return percent(v)
	})
	switch {
	case r.Gap != 0 && r.Reorder == "":
		errs = append(errs, field.Invalid(p.Child("gap"), r.Gap, "gap needs reorder"))
	case r.Gap < 0 || r.Gap > 10000:
		errs = append(errs, field.Invalid(p.Child("gap"), r.Gap, "want a whole number of packets from 1 to 10000"))
	}
	check("distribution", r.Distribution, func(v string) error {
		switch {
		case r.Jitter == "":
			return fmt.Errorf("distribution needs jitter")
		case v != "uniform" && v != "normal" && v != "pareto" && v != "paretonormal":
			return fmt.Errorf("want uniform, normal, pareto or paretonormal")
		}
		return nil
	})
	check("bandwidth", r.Bandwidth, func(v string) error { _, err := ParseBandwidth(v); return err })
	switch r.Direction {
	case "", DirectionEgress, DirectionIngress, DirectionBoth:
	default:
		errs = append(errs, field.NotSupported(p.Child("direction"), r.Direction, []Direction{DirectionEgress, DirectionIngress, DirectionBoth}))
	}
	shaping := r.Delay != "" || r.Loss != "" || r.Duplicate != "" || r.Corrupt != "" || r.Reorder != "" || r.Bandwidth != ""
	if (r.Partition || r.Reset) && shaping {
		errs = append(errs, field.Invalid(p.Child("partition"), true,
			"a partition or reset drops every matching packet; put delay, loss, duplicate, corrupt, reorder or bandwidth in a separate rule"))
	}
	if !shaping && !r.Partition && !r.Reset {
		errs = append(errs, field.Required(p, "at least one of delay, loss, duplicate, corrupt, reorder, bandwidth, partition, reset"))
	}
	errs = append(errs, validateTargets(p.Child("to"), r.To)...)
	errs = append(errs, validateTargets(p.Child("except"), r.Except)...)
	return errs
}

func validateTargets(p *field.Path, ts []string) field.ErrorList {
	var errs field.ErrorList
	if len(ts) > maxTargets {
		return field.ErrorList{field.TooMany(p, len(ts), maxTargets)}
	}
	for i, t := range ts {
		if _, err := ParseTarget(t); err != nil {
			errs = append(errs, field.Invalid(p.Index(i), t, err.Error()))
		}
	}
	return errs
}

func (d *DNSFault) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch d.Failure {
	case DNSServFail, DNSNXDomain, DNSTimeout:
	case "":
		errs = append(errs, field.Required(p.Child("failure"), formDNSFailure))
	default:
		errs = append(errs, field.NotSupported(p.Child("failure"), d.Failure, []DNSFailure{DNSServFail, DNSNXDomain, DNSTimeout}))
	}
	if d.Percent != "" {
		if v, err := ParsePercent(d.Percent); err != nil {
			errs = append(errs, field.Invalid(p.Child("percent"), d.Percent, err.Error()))
		} else if v == 0 {
			errs = append(errs, field.Invalid(p.Child("percent"), d.Percent, "want more than 0% (omit dns to disable it)"))
		}
	}
	if len(d.Hosts) == 0 {
		errs = append(errs, field.Required(p.Child("hosts"), formDNSHostname+" (at least one)"))
	}
	if len(d.Hosts) > maxHosts {
		errs = append(errs, field.TooMany(p.Child("hosts"), len(d.Hosts), maxHosts))
	}
	for i, h := range d.Hosts {
		if err := ValidDNSPattern(h); err != nil {
			errs = append(errs, field.Invalid(p.Child("hosts").Index(i), h, err.Error()))
		}
	}
	return errs
}

func (c *ClockFault) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Offset == "" && c.Drift == "" {
		errs = append(errs, field.Required(p, "at least one of offset, drift"))
	}
	if c.Offset != "" {
		d, err := ParseSignedDuration(c.Offset)
		if err == nil && (d > MaxClockOffset || d < -MaxClockOffset) {
			err = fmt.Errorf("want %s within ±%s", formSignedDur, MaxClockOffset)
		}
		if err != nil {
			errs = append(errs, field.Invalid(p.Child("offset"), c.Offset, err.Error()))
		}
	}
	if c.Drift != "" {
		if _, err := ParseDrift(c.Drift); err != nil {
			errs = append(errs, field.Invalid(p.Child("drift"), c.Drift, err.Error()))
		}
	}
	return errs
}

func (s *Schedule) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	parse := func(name, v string, required bool) (ok bool, d int64) {
		if v == "" {
			if required {
				errs = append(errs, field.Required(p.Child(name), formDuration))
			}
			return false, 0
		}
		dur, err := ParseDuration(v)
		if err == nil && (dur < 0 || dur > MaxScheduleLen) {
			err = fmt.Errorf("want %s of at most %s", formDuration, MaxScheduleLen)
		}
		if err != nil {
			errs = append(errs, field.Invalid(p.Child(name), v, err.Error()))
			return false, 0
		}
		return true, int64(dur)
	}
	okE, every := parse("every", s.Every, true)
	okF, dfor := parse("for", s.For, true)
	okJ, jitter := parse("jitter", s.Jitter, false)
	if okF && dfor == 0 {
		errs = append(errs, field.Invalid(p.Child("for"), s.For, "want more than 0 (omit the fault to disable it)"))
	}
	if okE && okF && dfor > every {
		errs = append(errs, field.Invalid(p.Child("for"), s.For, fmt.Sprintf("want a duration no longer than every (%s)", s.Every)))
	}
	if okE && okJ && jitter >= every {
		errs = append(errs, field.Invalid(p.Child("jitter"), s.Jitter, fmt.Sprintf("want a duration shorter than every (%s)", s.Every)))
	}
	return errs
}

// Normalize fills defaults and canonicalizes values so that the spec handed
// to the agent is unambiguous. Call it only on a valid spec.
func (s *FaultSpec) Normalize() {
	for i := range s.Network {
		r := &s.Network[i]
		if r.Direction == "" {
			r.Direction = DirectionEgress
		}
		r.To = canonicalTargets(r.To)
		r.Except = canonicalTargets(r.Except)
	}
	if s.DNS != nil {
		if s.DNS.Percent == "" {
			s.DNS.Percent = "100%"
		}
		for i, h := range s.DNS.Hosts {
			s.DNS.Hosts[i] = strings.ToLower(h)
		}
	}
	for i := range s.HTTP {
		s.HTTP[i].normalize()
	}
}

func canonicalTargets(ts []string) []string {
	for i, t := range ts {
		if pt, err := ParseTarget(t); err == nil {
			ts[i] = pt.String()
		}
	}
	return ts
}
