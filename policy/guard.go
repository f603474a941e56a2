package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Guard holds every injected pod to the policies for its whole life, not
// only at admission. It pauses a pod (faultline.dev/paused, the path the
// kill switch has always used: the agent removes every fault within a
// second of the downward-API file changing) as long as any of these holds:
//   - a policy that admitted it (faultline.dev/admitted) was deleted, or
//     replaced by another of the same name;
//   - a policy that admitted it no longer selects it, or any policy that
//     selects it now would refuse its running spec (paused, abortWhen
//     dark, outside its windows, limits tightened, DryRun);
//   - the namespace or the pod no longer opts in;
//   - a maxPercent group holds more admitted pods than its existing pods
//     allow (the newest admitted are paused);
//   - the admission record or the running spec cannot be read.
//
// It lifts only pauses it set (faultline.dev/paused-by), never one a person
// set, and a deleted policy's stop is never lifted: no policy, no chaos.
// Selection is judged from the policies recorded at admission as well as
// the pod's current labels, so relabelling a pod cannot escape a kill
// switch. It runs on the leader.
type Guard struct {
	Client client.Client
	Safety Safety
	// Now is the clock for windows; nil means time.Now.
	Now func() time.Time
	// Settle is how old a pod must be before maxPercent excess is judged
	// against the pods that exist (a ReplicaSet creates its pods in
	// batches); default 30s.
	Settle time.Duration
}

// PausedByGuard starts faultline.dev/paused-by when the Guard set the pause.
const PausedByGuard = "faultline: "

func (g *Guard) SetupWithManager(mgr ctrl.Manager) error {
	injected := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetAnnotations()[v1alpha1.AnnotationStatus]
		return ok
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("guard").
		For(&corev1.Pod{}, builder.WithPredicates(injected, predicate.Funcs{DeleteFunc: func(event.DeleteEvent) bool { return false }})).
		Watches(&v1alpha1.ChaosPolicy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			return g.injectedPods(ctx, "")
		})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return g.injectedPods(ctx, o.GetName())
		})).
		Complete(g)
}

// injectedPods lists the injected pods of one namespace, or all ("").
func (g *Guard) injectedPods(ctx context.Context, namespace string) []reconcile.Request {
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
		logf.FromContext(ctx).Error(err, "listing injected pods for the guard")
		return nil
	}
	var out []reconcile.Request
	for i := range pods.Items {
		if _, ok := pods.Items[i].Annotations[v1alpha1.AnnotationStatus]; ok {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return out
}

// Reconcile judges one injected pod and sets or lifts its pause.
func (g *Guard) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := g.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if _, injected := pod.Annotations[v1alpha1.AnnotationStatus]; !injected || pod.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	stops, again, err := g.judgePod(ctx, &pod, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := g.mark(ctx, &pod, stops); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: again}, nil
}

// mark sets the pause with its reasons, or lifts a pause the Guard set.
func (g *Guard) mark(ctx context.Context, pod *corev1.Pod, stops []string) error {
	ann := pod.Annotations
	by, hasBy := ann[v1alpha1.AnnotationPausedBy]
	var patch map[string]any
	switch {
	case len(stops) > 0:
		want := PausedByGuard + strings.Join(stops, "; ")
		if len(want) > 1024 {
			want = want[:1021] + "..."
		}
		if ann[v1alpha1.AnnotationPaused] == "true" && (!hasBy || by == want) {
			return nil // already stopped, by us or by a person
		}
		patch = map[string]any{v1alpha1.AnnotationPaused: "true", v1alpha1.AnnotationPausedBy: want}
	case hasBy:
		patch = map[string]any{v1alpha1.AnnotationPaused: nil, v1alpha1.AnnotationPausedBy: nil}
	default:
		return nil
	}
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": patch}})
	if err := g.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	logf.FromContext(ctx).Info("guard", "namespace", pod.Namespace, "pod", pod.Name, "paused", len(stops) > 0, "reasons", stops)
	return nil
}

// judgePod lists why the pod's faults must stop now (empty: they may run)
// and when to look again without an event (windows turn at minutes, the
// settle period ends).
func (g *Guard) judgePod(ctx context.Context, pod *corev1.Pod, now time.Time) ([]string, time.Duration, error) {
	var ns corev1.Namespace
	if err := g.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
		return nil, 0, client.IgnoreNotFound(err)
	}
	req := &Request{Pod: pod, NamespaceLabels: ns.Labels, NamespaceKnown: true}
	var stops []string
	if d, stop := g.Safety.admissible(req); stop {
		stops = append(stops, d.Message())
	}
	spec, err := runningSpec(pod)
	if err != nil {
		return append(stops, "its running spec cannot be read: "+err.Error()), 0, nil
	}
	refs, err := admittedBy(pod)
	if err != nil {
		return append(stops, err.Error()), 0, nil
	}
	var l v1alpha1.ChaosPolicyList
	if err := g.Client.List(ctx, &l); err != nil {
		return nil, 0, err
	}
	all := byName(l.Items)
	byNameIdx := map[string]*v1alpha1.ChaosPolicy{}
	for i := range all {
		byNameIdx[all[i].Name] = &all[i]
	}
	var again time.Duration
	selecting := map[string]bool{}
	for i := range all {
		ok, err := selects(&all[i], req)
		selecting[all[i].Name] = err == nil && ok
	}
	recorded := map[string]bool{}
	for _, ref := range refs {
		recorded[ref.Name] = true
		pol := byNameIdx[ref.Name]
		if pol == nil || pol.UID != ref.UID {
			stops = append(stops, fmt.Sprintf("policy %s that admitted it was deleted: no policy, no chaos", ref.Name))
			continue
		}
		if !selecting[pol.Name] {
			stops = append(stops, fmt.Sprintf("policy %s that admitted it no longer selects it", ref.Name))
		}
		excess, wait, err := g.excess(ctx, pod, pol, ref, now)
		if err != nil {
			return nil, 0, err
		}
		if excess != "" {
			stops = append(stops, excess)
		}
		again = sooner(again, wait)
	}
	for i := range all {
		pol := &all[i]
		if !selecting[pol.Name] && !recorded[pol.Name] {
			continue
		}
		if len(pol.Spec.Windows) > 0 {
			again = sooner(again, now.Truncate(time.Minute).Add(time.Minute+time.Second).Sub(now))
		}
		if pol.Spec.Mode == v1alpha1.ModeDryRun {
			stops = append(stops, "policy "+pol.Name+": mode is DryRun: it allows no chaos")
			continue
		}
		for _, pr := range judge(pol, spec, now) {
			if pol.Spec.Mode == v1alpha1.ModeAudit && pr.Code != CodePolicyPaused && pr.Code != CodeAbortUnknown {
				continue
			}
			stops = append(stops, pr.String())
		}
	}
	return stops, again, nil
}

// excess says whether pod is beyond ref's maxPercent of the pods of its
// group that exist. Admission sizes a group by what its controller wants
// (spec.replicas), which a quota may never let exist; here only existing
// pods count, and the newest admitted pods beyond the cap are stopped.
func (g *Guard) excess(ctx context.Context, pod *corev1.Pod, pol *v1alpha1.ChaosPolicy, ref PolicyRef, now time.Time) (string, time.Duration, error) {
	br := pol.Spec.BlastRadius
	if br == nil || br.MaxPercent == "" || pol.Spec.Mode == v1alpha1.ModeAudit {
		return "", 0, nil
	}
	settle := g.Settle
	if settle == 0 {
		settle = 30 * time.Second
	}
	if age := now.Sub(pod.CreationTimestamp.Time); age < settle {
		return "", settle - age + time.Second, nil
	}
	frac, err := v1alpha1.ParsePercent(br.MaxPercent)
	if err != nil {
		return "policy " + pol.Name + ": blastRadius.maxPercent " + br.MaxPercent + " is invalid", 0, nil
	}
	sel := client.MatchingLabels{}
	for _, k := range br.GroupBy {
		sel[k] = pod.Labels[k]
	}
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(pod.Namespace), sel); err != nil {
		return "", 0, err
	}
	var admitted []*corev1.Pod
	existing := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		existing++
		if rs, err := admittedBy(p); err == nil && slices.ContainsFunc(rs, func(r PolicyRef) bool { return r.UID == ref.UID }) {
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
	rank := slices.IndexFunc(admitted, func(p *corev1.Pod) bool { return p.Name == pod.Name })
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
