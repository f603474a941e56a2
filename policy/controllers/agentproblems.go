package controllers

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// EventNotApplied is the Event reason on a pod whose agent could not apply
// its faults at start-up.
const EventNotApplied = "FaultsNotApplied"

// AgentProblemReporter tells a pod's owner when its agent could not apply
// the faults (a destination that does not resolve, a kernel that refuses):
// the agent fails open, so the pod runs without chaos, and the only trace
// would be a termination message in the pod's status. The agent has no API
// access, so the injector, on the leader, reads that message and reports it
// once: a Warning Event, faultline_agent_problems_total and
// faultline.dev/agent-problem on the pod.
type AgentProblemReporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Problems prometheus.Counter
}

// NewAgentProblemCounter registers faultline_agent_problems_total.
func NewAgentProblemCounter(reg prometheus.Registerer) prometheus.Counter {
	return newCounter(reg, "faultline_agent_problems_total",
		"Injected pods whose agent could not apply their faults at start-up (they run without them).")
}

func (r *AgentProblemReporter) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("agent-problems").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			p, ok := o.(*corev1.Pod)
			return ok && agentProblem(p) != ""
		}))).
		Complete(r)
}

// agentProblem is the init container's report on an injected pod not yet
// reported, or "".
func agentProblem(p *corev1.Pod) string {
	if _, done := p.Annotations[v1alpha1.AnnotationAgentProblem]; done {
		return ""
	}
	if _, injected := p.Annotations[v1alpha1.AnnotationStatus]; !injected {
		return ""
	}
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name != v1alpha1.InitContainerName {
			continue
		}
		for _, st := range []corev1.ContainerState{s.State, s.LastTerminationState} {
			if t := st.Terminated; t != nil && strings.HasPrefix(t.Message, v1alpha1.AgentProblemPrefix) {
				return strings.TrimPrefix(t.Message, v1alpha1.AgentProblemPrefix)
			}
		}
	}
	return ""
}

func (r *AgentProblemReporter) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := r.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	problem := agentProblem(&pod)
	if problem == "" || pod.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	if err := reportOnce(ctx, r.Client, r.Recorder, r.Problems, &pod, v1alpha1.AnnotationAgentProblem, "reported", EventNotApplied, "Apply",
		"the agent could not apply the faults at start-up; the pod runs without them and the agent retries: "+problem); err != nil {
		return reconcile.Result{}, err
	}
	logf.FromContext(ctx).Info("agent could not apply faults", "namespace", pod.Namespace, "pod", pod.Name, "problem", problem)
	return reconcile.Result{}, nil
}
