package httpfault

import (
	"fmt"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// FromSpec is the rule a FaultSpec's http entry asks for, reading every
// connection until SetTo says which. The spec is a parsed one: an error
// here means it was not.
func FromSpec(f v1alpha1.HTTPFault) (*Rule, error) {
	rl := &Rule{}
	if m := f.Match; m != nil {
		rl.Method, rl.Path, rl.Host, rl.Headers = m.Method, m.Path, m.Host, m.Headers
	}
	if a := f.Abort; a != nil {
		pct, err := percent(a.Percent)
		if err != nil {
			return nil, fmt.Errorf("abort.percent: %w", err)
		}
		rl.Abort = &Abort{Status: int(a.Status), Body: a.Body, Percent: pct}
		if rl.Abort.Status == 0 {
			rl.Abort.Status = 503
		}
		if g := a.GRPC; g != nil {
			code := slices.Index(v1alpha1.GRPCCodes, g.Code)
			if code < 0 {
				return nil, fmt.Errorf("abort.grpc.code %q: want one of %v", g.Code, v1alpha1.GRPCCodes)
			}
			rl.Abort.GRPCCode, rl.Abort.Message = &code, g.Message
		}
	}
	if d := f.Delay; d != nil {
		dur, err := v1alpha1.ParseDuration(d.Fixed)
		if err != nil || dur <= 0 || dur > v1alpha1.MaxDelay {
			return nil, fmt.Errorf("delay.fixed %q: want a duration up to %s", d.Fixed, v1alpha1.MaxDelay)
		}
		pct, err := percent(d.Percent)
		if err != nil {
			return nil, fmt.Errorf("delay.percent: %w", err)
		}
		rl.Delay, rl.DelayPercent = time.Duration(dur), pct
	}
	return rl, nil
}

// percent reads "10%"; "" (not normalized) means all.
func percent(s string) (float64, error) {
	if s == "" {
		return 1, nil
	}
	return v1alpha1.ParsePercent(s)
}
