package controllers

import (
	"context"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// EventMissed is the Event reason on a pod created without the injector.
const EventMissed = "FaultsMissed"

// MissedReporter finds pods that asked for chaos but never reached the
// injector: failurePolicy Ignore lets pods through while it is down or
// slow, which keeps the cluster working but would leave their owners
// believing they have chaos. Such a pod carries a fault or profile
// annotation, opted in where its namespace takes part, and has neither
// faultline.dev/status (injected) nor faultline.dev/decision (seen and
// refused). Each is reported once: a Warning Event, the
// faultline_missed_injections_total counter, and faultline.dev/missed on the
// pod. It runs on the leader, from the manager's pod cache, so pods created
// during an outage are reported as soon as a replica is back.
type MissedReporter struct {
	Client       client.Client
	Recorder     events.EventRecorder
	OwnNamespace string
	Missed       prometheus.Counter
}

// NewMissedCounter registers faultline_missed_injections_total.
func NewMissedCounter(reg prometheus.Registerer) prometheus.Counter {
	return newCounter(reg, "faultline_missed_injections_total",
		"Pods that asked for faults but were created without the injector (it was unreachable).")
}

func (m *MissedReporter) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("missed-injections").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(missedCandidate))).
		Complete(m)
}

// missedCandidate looks at annotations only; Reconcile checks the rest.
func missedCandidate(o client.Object) bool {
	a := o.GetAnnotations()
	for _, k := range []string{v1alpha1.AnnotationStatus, v1alpha1.AnnotationDecision, v1alpha1.AnnotationMissed} {
		if _, ok := a[k]; ok {
			return false
		}
	}
	return v1alpha1.AsksForFaults(a)
}

func (m *MissedReporter) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := m.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !missedCandidate(&pod) || pod.DeletionTimestamp != nil || pod.Spec.HostNetwork ||
		pod.Namespace == m.OwnNamespace || slices.Contains(policy.ProtectedNamespaces, pod.Namespace) {
		return reconcile.Result{}, nil
	}
	var ns corev1.Namespace
	if err := m.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	optIn := pod.Labels[v1alpha1.LabelPodInject]
	switch ns.Labels[v1alpha1.LabelNamespaceInjection] {
	case v1alpha1.NamespaceInjectionOn:
		if optIn != "true" {
			return reconcile.Result{}, nil
		}
	case v1alpha1.NamespaceInjectionAll:
		if optIn == "false" {
			return reconcile.Result{}, nil
		}
	default:
		return reconcile.Result{}, nil
	}
	if err := reportOnce(ctx, m.Client, m.Recorder, m.Missed, &pod, v1alpha1.AnnotationMissed, "true", EventMissed, "Admit",
		"created without faultline's injector (it was unreachable; failurePolicy Ignore let the pod through): no faults were injected; delete the pod to have it admitted again"); err != nil {
		return reconcile.Result{}, err
	}
	logf.FromContext(ctx).Info("pod created without the injector", "namespace", pod.Namespace, "pod", pod.Name)
	return reconcile.Result{}, nil
}
