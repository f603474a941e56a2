package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The vDSO patch (SYS_PTRACE, shareProcessNamespace) only where every
// admitting policy allows it and Pod Security and the pod permit it; the
// decision says which method and why.
func TestTheClockMethodFollowsPoliciesPodSecurityAndThePod(t *testing.T) {
	allow := policy(t, "metadata: {name: vdso}\nspec: {limits: {maxClockOffset: 10m, clockVDSO: true}}")
	shimOnly := policy(t, "metadata: {name: shim-only}\nspec: {limits: {maxClockOffset: 10m}}")
	clock := map[string]string{v1alpha1.AnnotationFaults: "clock: {offset: 5m}"}
	noShare := pod("shop", optedIn, clock)
	noShare.Spec.ShareProcessNamespace = new(bool)
	cases := []struct {
		name     string
		policies []v1alpha1.ChaosPolicy
		psa      string
		pod      bool // false: the default pod
		vdso     bool
		contains string
	}{
		{name: "a policy that allows clockVDSO gets the vDSO patch beside the shim", policies: []v1alpha1.ChaosPolicy{allow}, vdso: true, contains: "vDSO patch for statically linked ones"},
		{name: "one selecting policy without clockVDSO keeps the shim only, and is named", policies: []v1alpha1.ChaosPolicy{allow, shimOnly}, contains: "ChaosPolicy shim-only does not set limits.clockVDSO"},
		{name: "Pod Security baseline forbids SYS_PTRACE", policies: []v1alpha1.ChaosPolicy{allow}, psa: "baseline", contains: `enforces Pod Security "baseline", which forbids the SYS_PTRACE`},
		{name: "a pod that refuses a shared process namespace keeps the shim only", policies: []v1alpha1.ChaosPolicy{allow}, pod: true, contains: "shareProcessNamespace: false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := map[string]string{v1alpha1.LabelNamespaceInjection: "enabled"}
			if c.psa != "" {
				ns[LabelPSAEnforce] = c.psa
			}
			p := pod("shop", optedIn, clock)
			if c.pod {
				p = noShare
			}
			e := Engine{Limiter: &Policies{Source: StaticPolicies(c.policies), Now: func() time.Time { return wednesdayMorning }}}
			d := e.Decide(context.Background(), &Request{Pod: p, NamespaceLabels: ns, NamespaceKnown: true})
			if !d.Inject || d.ClockVDSO != c.vdso || !strings.Contains(d.ClockMethod, c.contains) {
				t.Errorf("inject %v, vdso %v, method %q; want inject, vdso %v, a method saying %q", d.Inject, d.ClockVDSO, d.ClockMethod, c.vdso, c.contains)
			}
		})
	}
}
