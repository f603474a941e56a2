package controllers

import (
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Guard holds every injected pod to the policies for its whole life, not
// only at admission: on every pod, policy and namespace change (and when
// policy.Hold asks to look again) it judges the pod with policy.Hold and
// pauses it (faultline.dev/paused, the path the kill switch has always
// used: the agent removes every fault within a second of the downward-API
// file changing) while any reason holds.
//
// It lifts only pauses it set (faultline.dev/paused-by), never one a person
// set, and a deleted policy's stop is never lifted: no policy, no chaos.
// It runs on the leader.
type Guard struct {
	Client client.Client
	Safety policy.Safety
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

// judgePod reads what the pod is held to (its namespace, every policy, its
// blast-radius group) and asks policy.Hold why its faults must stop.
func (g *Guard) judgePod(ctx context.Context, pod *corev1.Pod, now time.Time) ([]string, time.Duration, error) {
	var ns corev1.Namespace
	if err := g.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
		return nil, 0, client.IgnoreNotFound(err)
	}
	var l v1alpha1.ChaosPolicyList
	if err := g.Client.List(ctx, &l); err != nil {
		return nil, 0, err
	}
	v, err := policy.Hold(ctx, policy.Running{
		Pod: pod, NamespaceLabels: ns.Labels, Policies: l.Items, Now: now, Settle: g.Settle,
		Group: func(ctx context.Context, groupBy []string) ([]corev1.Pod, error) {
			sel := client.MatchingLabels{}
			for _, k := range groupBy {
				sel[k] = pod.Labels[k]
			}
			var pods corev1.PodList
			if err := g.Client.List(ctx, &pods, client.InNamespace(pod.Namespace), sel); err != nil {
				return nil, err
			}
			return pods.Items, nil
		},
	}, g.Safety)
	return v.Stops, v.Recheck, err
}
