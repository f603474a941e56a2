package policy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// KillSwitch keeps each ChaosPolicy's status.injectedPods current and
// carries its paused flag to the pods already
// running with chaos: it sets faultline.dev/paused on every injected pod the
// policy selects (their agents remove the faults within a second of the
// downward API file changing) and lifts exactly that when unpaused. It runs
// under leader election, once per cluster.
type KillSwitch struct {
	Client client.Client
}

// Per-policy gauges, set by the kill switch (on the leader, which is the
// replica a dashboard should read them from).
var (
	policyInjectedPods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "faultline_policy_injected_pods",
		Help: "Injected pods that each ChaosPolicy selects (its status.injectedPods).",
	}, []string{"policy"})
	policyPaused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "faultline_policy_paused",
		Help: "1 when a ChaosPolicy's kill switch is on (spec.paused), else 0.",
	}, []string{"policy"})
)

func init() {
	metrics.Registry.MustRegister(policyInjectedPods, policyPaused)
}

// SetupWithManager watches policies, and injected pods so that a pod
// admitted just before the switch was thrown is caught too.
func (k *KillSwitch) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("killswitch").
		For(&v1alpha1.ChaosPolicy{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(k.policiesForPod)).
		Complete(k)
}

func (k *KillSwitch) policiesForPod(ctx context.Context, o client.Object) []reconcile.Request {
	if _, injected := o.GetAnnotations()[v1alpha1.AnnotationStatus]; !injected {
		return nil
	}
	var l v1alpha1.ChaosPolicyList
	if err := k.Client.List(ctx, &l); err != nil {
		return nil
	}
	// Every policy: the pod may change its pause state or its count.
	out := make([]reconcile.Request, 0, len(l.Items))
	for _, p := range l.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return out
}

// Reconcile brings every injected pod in line with one policy's switch.
func (k *KillSwitch) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	var pol v1alpha1.ChaosPolicy
	paused, exists := false, false
	if err := k.Client.Get(ctx, req.NamespacedName, &pol); err == nil {
		paused, exists = pol.Spec.Paused, true
	} else if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	} // a deleted policy lifts its pauses
	var pods corev1.PodList
	if err := k.Client.List(ctx, &pods); err != nil {
		return reconcile.Result{}, err
	}
	nsLabels := map[string]map[string]string{}
	changed := 0
	var injected int32
	for i := range pods.Items {
		pod := &pods.Items[i]
		ann := pod.Annotations
		if _, injected := ann[v1alpha1.AnnotationStatus]; !injected {
			continue
		}
		selected := false
		if exists {
			labels, ok := nsLabels[pod.Namespace]
			if !ok {
				var ns corev1.Namespace
				if err := k.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
					return reconcile.Result{}, err
				}
				labels = ns.Labels
				nsLabels[pod.Namespace] = labels
			}
			var err error
			if selected, err = selects(&pol, &Request{Pod: pod, NamespaceLabels: labels}); err != nil {
				return reconcile.Result{}, err
			}
			if selected {
				injected++
			}
		}
		selected = selected && paused
		var patch map[string]any
		switch {
		case selected && ann[v1alpha1.AnnotationPaused] != "true":
			patch = map[string]any{v1alpha1.AnnotationPaused: "true", v1alpha1.AnnotationPausedBy: req.Name}
		case !selected && ann[v1alpha1.AnnotationPausedBy] == req.Name:
			patch = map[string]any{v1alpha1.AnnotationPaused: nil, v1alpha1.AnnotationPausedBy: nil}
		default:
			continue
		}
		body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": patch}})
		if err := k.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("patching pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		changed++
	}
	if exists {
		policyInjectedPods.WithLabelValues(req.Name).Set(float64(injected))
		policyPaused.WithLabelValues(req.Name).Set(map[bool]float64{true: 1}[paused])
	} else {
		policyInjectedPods.DeleteLabelValues(req.Name)
		policyPaused.DeleteLabelValues(req.Name)
	}
	if changed > 0 {
		log.Info("kill switch", "policy", req.Name, "paused", paused, "podsChanged", changed)
	}
	if exists && pol.Status.InjectedPods != injected {
		orig := pol.DeepCopy()
		pol.Status.InjectedPods = injected
		if err := k.Client.Status().Patch(ctx, &pol, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating status of %s: %w", pol.Name, err)
		}
	}
	return reconcile.Result{}, nil
}
