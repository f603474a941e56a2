package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Codes of policy decisions.
const (
	CodePolicyPaused   Code = "policy-paused"
	CodeOutsideWindow  Code = "outside-window"
	CodeLimitExceeded  Code = "limit-exceeded"
	CodeDryRun         Code = "dry-run"
	CodePolicyInvalid  Code = "policy-invalid"
	CodeAuditViolation Code = "audit-violation"
)

// PolicySource lists the ChaosPolicies (an informer cache in the webhook,
// files for `faultline explain`).
type PolicySource interface {
	ChaosPolicies(ctx context.Context) ([]v1alpha1.ChaosPolicy, error)
}

// StaticPolicies is a fixed list, for offline use and tests.
type StaticPolicies []v1alpha1.ChaosPolicy

func (s StaticPolicies) ChaosPolicies(context.Context) ([]v1alpha1.ChaosPolicy, error) { return s, nil }

// Policies is the Limiter backed by ChaosPolicies. Every policy that selects
// the pod must allow it: the combination is the most restrictive one.
type Policies struct {
	Source PolicySource
	// Now is the clock for windows; nil means time.Now.
	Now func() time.Time
	// Reserver holds blast-radius slots; nil leaves maxPods unenforced
	// (offline, where there is no shared state).
	Reserver Reserver
	// Groups sizes blast-radius groups for maxPercent.
	Groups GroupSizer
	// Owners, when set, lets maxPercent count the pods a controller is
	// about to create; nil counts only existing pods.
	Owners OwnerReplicas
	// Decisions caches verdicts; nil evaluates every time.
	Decisions *DecisionCache
}

func (p *Policies) Limit(ctx context.Context, req *Request, spec *v1alpha1.FaultSpec) Decision {
	all, err := p.Source.ChaosPolicies(ctx)
	// Informers list policies in no fixed order: by name, the same
	// policies give the same decision, reasons, cache key and default
	// faults (in list order the cache mostly missed with two or more).
	all = byName(all)
	if err != nil {
		return Skip(CodeNoPolicy, "ChaosPolicies could not be read ("+err.Error()+"): not injected", true)
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	v := p.Decisions.verdict(all, req, spec, now)
	if v.final != nil {
		return Decision{Reasons: slices.Clone(v.final)}
	}
	// The cache key covers the list's order, so the indices hold on a hit.
	matched := make([]*v1alpha1.ChaosPolicy, len(v.matched))
	for i, idx := range v.matched {
		matched[i] = &all[idx]
	}
	names := make([]string, len(matched))
	refs := make([]PolicyRef, len(matched))
	for i, m := range matched {
		names[i], refs[i] = m.Name, RefOf(m)
	}
	reasons := slices.Clone(v.audits)
	reasons = append(reasons, Reason{Code: CodeInjected, Message: "allowed by ChaosPolicy " + strings.Join(names, ", ")})
	// Blast radius is never cached (it is shared, changing state) and is
	// taken last, by Reserve.
	d := Decision{Inject: true, Spec: spec, Reasons: reasons, Admitted: refs, slotsIn: matched}
	d.ClockVDSO, d.ClockMethod = clockMethod(spec, matched)
	return d
}

// clockMethod: the shim for dynamically linked programs always; the vDSO
// patch for static ones when every admitting policy allows it.
func clockMethod(spec *v1alpha1.FaultSpec, matched []*v1alpha1.ChaosPolicy) (bool, string) {
	if !spec.HasClock() {
		return false, ""
	}
	var without []string
	for _, m := range matched {
		if !m.Spec.Limits.ClockVDSO {
			without = append(without, m.Name)
		}
	}
	if len(without) > 0 {
		return false, MethodShimOnly + ": ChaosPolicy " + strings.Join(without, ", ") + " does not set limits.clockVDSO, so statically linked programs (most Go binaries) keep real time"
	}
	return true, MethodShimAndVDSO
}

// The clock methods, as explain and the status annotation say them.
const (
	MethodShimOnly    = "LD_PRELOAD shim only"
	MethodShimAndVDSO = "LD_PRELOAD shim for dynamically linked programs, vDSO patch for statically linked ones"
)

// Reserve takes the blast-radius slots of the policies that admitted d, or
// turns d into a refusal naming the full group.
func (p *Policies) Reserve(ctx context.Context, req *Request, d Decision) Decision {
	taken, full, err := p.reserveAll(ctx, req, d.slotsIn)
	d.slotsIn = nil
	switch {
	case err != nil:
		refused := Skip(CodeBlastRadius, "blast radius could not be checked ("+err.Error()+"): not injected", true)
		refused.Reasons = append(slices.Clone(d.Reasons), refused.Reasons...)
		return refused
	case full != nil:
		return Decision{Reasons: append(slices.Clone(d.Reasons), *full)}
	}
	d.Reservations = taken
	return d
}

// verdict is what the policies say before blast radius: either a final
// refusal (final), or the policies that allow the pod (indices into the
// policy list, sorted by name) and the Audit notes.
// It depends only on the policies' specs, the labels, the spec and the
// minute, which is what makes it cacheable.
type verdict struct {
	final   []Reason
	matched []int
	audits  []Reason
}

func evaluate(all []v1alpha1.ChaosPolicy, req *Request, spec *v1alpha1.FaultSpec, now time.Time) verdict {
	var matched []int
	for i := range all {
		ok, err := selects(&all[i], req)
		if err != nil {
			return verdict{final: []Reason{{Code: CodePolicyInvalid, Policy: all[i].Name, Message: err.Error(), Notify: true}}}
		}
		if ok {
			matched = append(matched, i)
		}
	}
	if len(matched) == 0 {
		return verdict{final: Skip(CodeNoPolicy, fmt.Sprintf("no ChaosPolicy selects namespace %s and this pod's labels: chaos is off until a platform team allows it", req.Pod.Namespace), true).Reasons}
	}
	slices.SortFunc(matched, func(a, b int) int { return strings.Compare(all[a].Name, all[b].Name) })

	var refusals, audits, dry []Reason
	for _, idx := range matched {
		pol := &all[idx]
		problems := judge(pol, spec, now)
		mode := pol.Spec.Mode
		if mode == "" {
			mode = v1alpha1.ModeEnforce
		}
		if mode == v1alpha1.ModeDryRun {
			msg := "DryRun: would inject " + strings.Join(spec.Kinds(), ", ")
			if len(problems) > 0 {
				msg = "DryRun: would not inject: " + joinMessages(problems)
			}
			dry = append(dry, Reason{Code: CodeDryRun, Policy: pol.Name, Message: msg, Notify: true})
			continue
		}
		for _, pr := range problems {
			// The kill switch and a dark abortWhen hold whatever the mode.
			if mode == v1alpha1.ModeAudit && pr.Code != CodePolicyPaused && pr.Code != CodeAbortUnknown {
				pr.Code = CodeAuditViolation
				pr.Message = "Audit: injected although " + pr.Message
				audits = append(audits, pr)
				continue
			}
			refusals = append(refusals, pr)
		}
	}
	switch {
	case len(refusals) > 0:
		// Report every refusal; the first decides the metric label.
		return verdict{final: refusals}
	case len(dry) > 0:
		return verdict{final: dry}
	}
	return verdict{matched: matched, audits: audits}
}

// judge lists what keeps pol from allowing spec now.
func judge(pol *v1alpha1.ChaosPolicy, spec *v1alpha1.FaultSpec, now time.Time) []Reason {
	r := func(code Code, msg string) Reason {
		return Reason{Code: code, Policy: pol.Name, Message: msg, Notify: true}
	}
	if pol.Spec.Paused {
		return []Reason{r(CodePolicyPaused, "paused (kill switch): no new chaos")}
	}
	if msg := AbortUnknown(pol); msg != "" {
		return []Reason{r(CodeAbortUnknown, msg)}
	}
	var out []Reason
	in, err := inWindows(pol.Spec.Windows, now)
	switch {
	case err != nil:
		out = append(out, r(CodePolicyInvalid, err.Error()))
	case !in:
		out = append(out, r(CodeOutsideWindow, "outside its windows ("+describeWindows(pol.Spec.Windows)+")"))
	}
	for _, v := range violations(spec, pol.Spec.Limits) {
		out = append(out, r(CodeLimitExceeded, v))
	}
	return out
}

func selects(pol *v1alpha1.ChaosPolicy, req *Request) (bool, error) {
	ok, err := matches(pol.Spec.NamespaceSelector, req.NamespaceLabels)
	if err != nil || !ok {
		return false, wrapSel("namespaceSelector", err)
	}
	ok, err = matches(pol.Spec.PodSelector, req.Pod.Labels)
	return ok, wrapSel("podSelector", err)
}

func matches(sel *metav1.LabelSelector, l map[string]string) (bool, error) {
	if sel == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(l)), nil
}

func wrapSel(field string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", field, err)
}

func joinMessages(rs []Reason) string {
	m := make([]string, len(rs))
	for i, r := range rs {
		m[i] = r.Message
	}
	return strings.Join(m, "; ")
}

// DefaultFaults returns the defaultFaults of the first (by name) policy that
// selects the pod and has any; the usual limits then apply to them.
func (p *Policies) DefaultFaults(ctx context.Context, req *Request) (*v1alpha1.FaultSpec, string) {
	all, err := p.Source.ChaosPolicies(ctx)
	if err != nil {
		return nil, ""
	}
	// The first by name: the same policies give the same default faults
	// whatever order the informer lists them in.
	all = byName(all)
	for i := range all {
		pol := &all[i]
		if pol.Spec.DefaultFaults == nil {
			continue
		}
		if ok, err := selects(pol, req); err == nil && ok {
			spec := pol.Spec.DefaultFaults.DeepCopy()
			if errs := spec.Validate(nil); len(errs) > 0 {
				continue
			}
			spec.Normalize()
			return spec, pol.Name
		}
	}
	return nil, ""
}
