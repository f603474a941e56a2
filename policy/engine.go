package policy

import (
	"context"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Limiter is the seam where ChaosPolicies decide what a safe, opted-in pod
// may have. It returns the admitted spec (possibly smaller) or a refusal.
type Limiter interface {
	Limit(ctx context.Context, req *Request, spec *v1alpha1.FaultSpec) Decision
}

// Engine runs the safety rules, reads the requested spec, asks the Limiter
// and finally checks that the result can run under Pod Security Admission.
type Engine struct {
	Safety  Safety
	Limiter Limiter
	// Specs caches parsed annotations; nil parses every time.
	Specs *SpecCache
	// Profiles resolves faultline.dev/profile; nil refuses profiles.
	Profiles ProfileSource
}

// Decide never fails: every outcome, including bad input, is a Decision.
func (e *Engine) Decide(ctx context.Context, req *Request) Decision {
	if d, stop := e.Safety.check(req); stop {
		return d
	}
	spec, pre, ok := e.requestedSpec(ctx, req)
	if !ok {
		return pre
	}
	d := e.Limiter.Limit(ctx, req, spec)
	d.Reasons = append(pre.Reasons, d.Reasons...)
	if !d.Inject {
		return d
	}
	if refused, stop := podSecurity(req, d.Spec); stop {
		refused.Reasons = append(d.Reasons, refused.Reasons...)
		return refused
	}
	if level, forbids := forbidsCapabilities(req); d.ClockVDSO && forbids {
		d.ClockVDSO = false
		d.ClockMethod = MethodShimOnly + ": namespace " + req.Pod.Namespace + " enforces Pod Security \"" + level + "\", which forbids the SYS_PTRACE a vDSO patch needs, so statically linked programs (most Go binaries) keep real time"
	}
	if d.ClockVDSO && req.Pod.Spec.ShareProcessNamespace != nil && !*req.Pod.Spec.ShareProcessNamespace {
		d.ClockVDSO = false
		d.ClockMethod = MethodShimOnly + ": the pod sets shareProcessNamespace: false, and the agent must see the app's processes to patch them"
	}
	return d
}

// reserver is a Limiter that holds blast-radius slots (Policies).
type reserver interface {
	Reserve(ctx context.Context, req *Request, d Decision) Decision
}

// Reserve takes d's blast-radius slots, or refuses the pod because a group
// is full. The webhook calls it last, after the patch is built, so a slot is
// never taken for a pod that then gets no chaos; a refusal before Reserve
// holds nothing to give back.
func (e *Engine) Reserve(ctx context.Context, req *Request, d Decision) Decision {
	r, ok := e.Limiter.(reserver)
	if !ok || !d.Inject || req.DryRun {
		return d
	}
	return r.Reserve(ctx, req, d)
}

// AdmitRequested admits exactly what the pod asks for. It stands in for the
// policy engine: the webhook uses it until ChaosPolicies exist, and
// `faultline inject --allow-all` uses it to preview.
type AdmitRequested struct {
	// Why is said in the decision's reason.
	Why string
}

func (a AdmitRequested) Limit(_ context.Context, _ *Request, spec *v1alpha1.FaultSpec) Decision {
	d := Decision{Inject: true, Spec: spec, Reasons: []Reason{{Code: CodeInjected, Message: a.Why}}}
	if spec.HasClock() {
		d.ClockVDSO, d.ClockMethod = true, MethodShimAndVDSO
	}
	return d
}

// NoPolicy refuses everything: with no ChaosPolicy, chaos is off.
type NoPolicy struct {
	Why string
}

func (n NoPolicy) Limit(context.Context, *Request, *v1alpha1.FaultSpec) Decision {
	return Skip(CodeNoPolicy, n.Why, true)
}
