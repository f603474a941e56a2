package controllers

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// KillSwitch keeps each ChaosPolicy's status.injectedPods and its gauges
// current: the running pods it admitted. Carrying the switch to those pods
// is the Guard's work, with every other reason to stop. It runs under
// leader election, once per cluster.
type KillSwitch struct {
	Client client.Client
	// Gauges are set per policy (on the leader, which is the replica a
	// dashboard should read them from); nil sets none.
	Gauges *PolicyGauges
}

// PolicyGauges are faultline_policy_injected_pods and faultline_policy_paused.
type PolicyGauges struct {
	injected, paused *prometheus.GaugeVec
}

// NewPolicyGauges registers the per-policy gauges with reg.
func NewPolicyGauges(reg prometheus.Registerer) (*PolicyGauges, error) {
	g := &PolicyGauges{
		injected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "faultline_policy_injected_pods",
			Help: "Running pods that each ChaosPolicy admitted (its status.injectedPods).",
		}, []string{"policy"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "faultline_policy_paused",
			Help: "1 when a ChaosPolicy's kill switch is on (spec.paused), else 0.",
		}, []string{"policy"}),
	}
	for _, c := range []prometheus.Collector{g.injected, g.paused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering policy gauges: %w", err)
		}
	}
	return g, nil
}

func (g *PolicyGauges) set(policy string, injected int32, paused bool) {
	if g == nil {
		return
	}
	g.injected.WithLabelValues(policy).Set(float64(injected))
	g.paused.WithLabelValues(policy).Set(map[bool]float64{true: 1}[paused])
}

func (g *PolicyGauges) forget(policy string) {
	if g == nil {
		return
	}
	g.injected.DeleteLabelValues(policy)
	g.paused.DeleteLabelValues(policy)
}

// SetupWithManager watches policies, and the pods each admitted, so that
// the counts follow pods as they come and go.
func (k *KillSwitch) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("killswitch").
		For(&v1alpha1.ChaosPolicy{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(k.policiesForPod)).
		Complete(k)
}

func (k *KillSwitch) policiesForPod(ctx context.Context, o client.Object) []reconcile.Request {
	// Only the policies that admitted the pod count it: a pod event no
	// longer makes every policy list every pod.
	refs, err := policy.AdmittedFrom(o.GetAnnotations())
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(refs))
	for _, r := range refs {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: r.Name}})
	}
	return out
}

// Reconcile counts the running pods one policy admitted and sets its gauges.
func (k *KillSwitch) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pol v1alpha1.ChaosPolicy
	if err := k.Client.Get(ctx, req.NamespacedName, &pol); apierrors.IsNotFound(err) {
		k.Gauges.forget(req.Name)
		return reconcile.Result{}, nil
	} else if err != nil {
		return reconcile.Result{}, err
	}
	var pods corev1.PodList
	if err := k.Client.List(ctx, &pods); err != nil {
		return reconcile.Result{}, err
	}
	var injected int32
	for i := range pods.Items {
		refs, err := policy.AdmittedBy(&pods.Items[i])
		if err == nil && pods.Items[i].DeletionTimestamp == nil && slices.ContainsFunc(refs, func(r policy.PolicyRef) bool { return r.UID == pol.UID }) {
			injected++
		}
	}
	k.Gauges.set(req.Name, injected, pol.Spec.Paused)
	if pol.Status.InjectedPods != injected {
		orig := pol.DeepCopy()
		pol.Status.InjectedPods = injected
		if err := k.Client.Status().Patch(ctx, &pol, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating status of %s: %w", pol.Name, err)
		}
	}
	return reconcile.Result{}, nil
}
