package policy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Running is an injected pod as the Guard (policy/controllers) sees it:
// what Hold judges it against.
type Running struct {
	Pod             *corev1.Pod
	NamespaceLabels map[string]string
	// Policies are every ChaosPolicy in the cluster, in any order.
	Policies []v1alpha1.ChaosPolicy
	Now      time.Time
	// Settle is how old a pod must be before maxPercent excess is judged
	// against the pods that exist (a ReplicaSet creates its pods in
	// batches); 0 means 30s.
	Settle time.Duration
	// Group lists the pods of the pod's namespace whose labels equal its
	// own for groupBy (maxPercent counts them).
	Group func(ctx context.Context, groupBy []string) ([]corev1.Pod, error)
}

// Holding is Hold's answer: why the pod's faults must stop now (empty:
// they may run) and when to judge again without an event (windows turn at
// minutes, the settle period ends, other pods of a group come and go).
type Holding struct {
	Stops   []string
	Recheck time.Duration
}

// Hold judges a running pod against the policies for its whole life:
//   - a policy that admitted it (faultline.dev/admitted) was deleted, or
//     replaced by another of the same name;
//   - a policy that admitted it no longer selects it, or any policy that
//     selects it now would refuse its running spec (paused, abortWhen
//     dark, outside its windows, limits tightened, DryRun);
//   - the namespace or the pod no longer opts in (safety);
//   - a maxPercent group holds more admitted pods than its existing pods
//     allow (the newest admitted are stopped);
//   - the admission record or the running spec cannot be read.
//
// Selection is judged from the policies recorded at admission as well as
// the pod's current labels, so relabelling a pod cannot escape a kill
// switch. Only an error from Group is an error.
func Hold(ctx context.Context, r Running, safety Safety) (Holding, error) {
	pod := r.Pod
	req := &Request{Pod: pod, NamespaceLabels: r.NamespaceLabels, NamespaceKnown: true}
	var h Holding
	if d, stop := safety.admissible(req); stop {
		h.Stops = append(h.Stops, d.Message())
	}
	spec, err := runningSpec(pod)
	if err != nil {
		h.Stops = append(h.Stops, "its running spec cannot be read: "+err.Error())
		return h, nil
	}
	refs, err := AdmittedBy(pod)
	if err != nil {
		h.Stops = append(h.Stops, err.Error())
		return h, nil
	}
	all := byName(r.Policies)
	byNameIdx := map[string]*v1alpha1.ChaosPolicy{}
	selecting := map[string]bool{}
	for i := range all {
		byNameIdx[all[i].Name] = &all[i]
		ok, err := selects(&all[i], req)
		selecting[all[i].Name] = err == nil && ok
	}
	recorded := map[string]bool{}
	for _, ref := range refs {
		recorded[ref.Name] = true
		pol := byNameIdx[ref.Name]
		if pol == nil || pol.UID != ref.UID {
			h.Stops = append(h.Stops, fmt.Sprintf("policy %s that admitted it was deleted: no policy, no chaos", ref.Name))
			continue
		}
		if !selecting[pol.Name] {
			h.Stops = append(h.Stops, fmt.Sprintf("policy %s that admitted it no longer selects it", ref.Name))
		}
		excess, wait, err := r.excess(ctx, pol, ref)
		if err != nil {
			return Holding{}, err
		}
		if excess != "" {
			h.Stops = append(h.Stops, excess)
		}
		h.Recheck = sooner(h.Recheck, wait)
	}
	for i := range all {
		pol := &all[i]
		if !selecting[pol.Name] && !recorded[pol.Name] {
			continue
		}
		if len(pol.Spec.Windows) > 0 {
			h.Recheck = sooner(h.Recheck, r.Now.Truncate(time.Minute).Add(time.Minute+time.Second).Sub(r.Now))
		}
		if pol.Spec.Mode == v1alpha1.ModeDryRun {
			h.Stops = append(h.Stops, "policy "+pol.Name+": mode is DryRun: it allows no chaos")
			continue
		}
		for _, pr := range judge(pol, spec, r.Now) {
			if pol.Spec.Mode == v1alpha1.ModeAudit && pr.Code != CodePolicyPaused && pr.Code != CodeAbortUnknown {
				continue
			}
			h.Stops = append(h.Stops, pr.String())
		}
		// The vDSO patch was allowed by every policy at admission; one
		// that no longer allows it stops it (pausing restores the vDSO).
		if spec.HasClock() && !pol.Spec.Limits.ClockVDSO && pol.Spec.Mode != v1alpha1.ModeAudit &&
			strings.Contains(pod.Annotations[v1alpha1.AnnotationStatus], MethodShimAndVDSO) {
			h.Stops = append(h.Stops, "policy "+pol.Name+": clock faults patch static programs' vDSO, which limits.clockVDSO no longer allows")
		}
	}
	return h, nil
}

// excess says whether the pod is beyond ref's maxPercent of the pods of its
// group that exist. Admission sizes a group by what its controller wants
// (spec.replicas), which a quota may never let exist; here only existing
// pods count, and the newest admitted pods beyond the cap are stopped.
func (r Running) excess(ctx context.Context, pol *v1alpha1.ChaosPolicy, ref PolicyRef) (string, time.Duration, error) {
	br := pol.Spec.BlastRadius
	if br == nil || br.MaxPercent == "" || pol.Spec.Mode == v1alpha1.ModeAudit {
		return "", 0, nil
	}
	settle := r.Settle
	if settle == 0 {
		settle = 30 * time.Second
	}
	if age := r.Now.Sub(r.Pod.CreationTimestamp.Time); age < settle {
		return "", settle - age + time.Second, nil
	}
	frac, err := v1alpha1.ParsePercent(br.MaxPercent)
	if err != nil {
		return "policy " + pol.Name + ": blastRadius.maxPercent " + br.MaxPercent + " is invalid", 0, nil
	}
	if r.Group == nil {
		return "", 0, fmt.Errorf("policy %s: blastRadius.maxPercent needs the pods of the group and none are available", pol.Name)
	}
	pods, err := r.Group(ctx, br.GroupBy)
	if err != nil {
		return "", 0, fmt.Errorf("listing the pods of the group: %w", err)
	}
	var admitted []*corev1.Pod
	existing := 0
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		existing++
		if rs, err := AdmittedBy(p); err == nil && slices.ContainsFunc(rs, func(x PolicyRef) bool { return x.UID == ref.UID }) {
			admitted = append(admitted, p)
		}
	}
	slices.SortFunc(admitted, func(a, b *corev1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	allowed := int(math.Floor(frac * float64(existing)))
	rank := slices.IndexFunc(admitted, func(p *corev1.Pod) bool { return p.Name == r.Pod.Name })
	// Other pods of the group come and go without an event for this one.
	const recheck = 30 * time.Second
	if rank < allowed {
		return "", recheck, nil
	}
	return fmt.Sprintf("policy %s: blast radius: maxPercent %s of the %d pods that exist allows %d with chaos; this is admitted pod %d of %d",
		pol.Name, br.MaxPercent, existing, allowed, rank+1, len(admitted)), recheck, nil
}

func sooner(a, b time.Duration) time.Duration {
	if b > 0 && (a == 0 || b < a) {
		return b
	}
	return a
}
