package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// guardWorld is a real API server with the Guard and the KillSwitch's
// status counting running, a namespace "shop" that opts in, and helpers to
// make injected pods the way the webhook leaves them.
type guardWorld struct {
	t      *testing.T
	ctx    context.Context
	c      client.Client
	now    atomic.Int64 // the Guard's clock, unix nanoseconds
	gauges *PolicyGauges
}

func newGuardWorld(t *testing.T) *guardWorld {
	cfg, scheme, c := testenv.APIServer(t, nil)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &guardWorld{t: t, c: c}
	w.now.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	g := &Guard{Client: mgr.GetClient(), Now: func() time.Time { return time.Unix(0, w.now.Load()) }, Settle: time.Nanosecond}
	if err := g.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	w.gauges, err = NewPolicyGauges(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := (&KillSwitch{Client: mgr.GetClient(), Gauges: w.gauges}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.ctx = ctx
	go func() { _ = mgr.Start(ctx) }()
	for _, ns := range []string{"shop", "other"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn}}}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *guardWorld) policy(name string, mutate func(*v1alpha1.ChaosPolicySpec)) *v1alpha1.ChaosPolicy {
	p := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		Limits:            v1alpha1.Limits{MaxDelay: "1s", MaxLoss: "10%"},
	}}
	if mutate != nil {
		mutate(&p.Spec)
	}
	if err := w.c.Create(w.ctx, p); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// update changes a policy's spec; it also touches an annotation so that
// even an empty change is an event.
func (w *guardWorld) update(p *v1alpha1.ChaosPolicy, mutate func(*v1alpha1.ChaosPolicySpec)) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		mutate(&p.Spec)
		p.Annotations = map[string]string{"touched": time.Now().String()}
		return w.c.Update(w.ctx, p)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// pod creates a pod as the webhook would have injected it: status, the
// admission record of pols, the running spec in faultline-init's env.
func (w *guardWorld) pod(ns, name, spec string, labels, ann map[string]string, pols ...*v1alpha1.ChaosPolicy) {
	w.t.Helper()
	refs := make([]policy.PolicyRef, len(pols))
	for i, p := range pols {
		refs[i] = policy.RefOf(p)
	}
	a := map[string]string{v1alpha1.AnnotationStatus: "{}", v1alpha1.AnnotationAdmitted: policy.EncodeAdmitted(refs)}
	for k, v := range ann {
		a[k] = v
	}
	labels2 := map[string]string{v1alpha1.LabelPodInject: "true"}
	for k, v := range labels {
		labels2[k] = v
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels2, Annotations: a},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: v1alpha1.InitContainerName, Image: "agent", Env: []corev1.EnvVar{{Name: v1alpha1.EnvSpec, Value: spec}}}},
			Containers:     []corev1.Container{{Name: "app", Image: "app"}}}}
	if err := w.c.Create(w.ctx, p); err != nil {
		w.t.Fatal(err)
	}
}

func (w *guardWorld) get(ns, name string) *corev1.Pod {
	w.t.Helper()
	var p corev1.Pod
	if err := w.c.Get(w.ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		w.t.Fatal(err)
	}
	return &p
}

func (w *guardWorld) paused(ns, name string) bool {
	return w.get(ns, name).Annotations[v1alpha1.AnnotationPaused] == "true"
}

// waitPaused waits until the pod's pause is want, and returns how long it took.
func (w *guardWorld) waitPaused(ns, name string, want bool, why string) time.Duration {
	w.t.Helper()
	start := time.Now()
	for w.paused(ns, name) != want {
		if time.Since(start) > 10*time.Second {
			w.t.Fatalf("%s: pod %s/%s paused=%v after 10s, want %v (annotations %v)", why, ns, name, !want, want, w.get(ns, name).Annotations)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// stays checks that the pod keeps its pause state for a while: the Guard
// reconciles within milliseconds, so a second is plenty to see it act.
func (w *guardWorld) stays(ns, name string, want bool, why string) {
	w.t.Helper()
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if w.paused(ns, name) != want {
			w.t.Fatalf("%s: pod %s/%s paused=%v, want %v (annotations %v)", why, ns, name, !want, want, w.get(ns, name).Annotations)
		}
	}
}

const runningDelay = `{"network":[{"delay":"100ms"}]}`

func TestTheGuardHoldsPodsToTheirPoliciesForTheirWholeLife(t *testing.T) {
	w := newGuardWorld(t)

	t.Run("the kill switch pauses the pods its policy admitted, even relabelled, and lifts only its own pause", func(t *testing.T) {
		w.t = t
		pol := w.policy("switch", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}
		})
		w.pod("shop", "cart", runningDelay, map[string]string{"app": "cart"}, nil, pol)
		w.pod("shop", "hand-paused", runningDelay, map[string]string{"app": "cart"}, map[string]string{v1alpha1.AnnotationPaused: "true"}, pol)
		w.stays("shop", "cart", false, "a pod its policy allows")
		// The tenant relabels the pod out of the selector: the recorded
		// admission still binds it to the switch (and it stops anyway:
		// its policy no longer selects it).
		p := w.get("shop", "cart")
		p.Labels["app"] = "escaped"
		if err := w.c.Update(w.ctx, p); err != nil {
			t.Fatal(err)
		}
		w.waitPaused("shop", "cart", true, "relabelled out of the policy that admitted it")
		p = w.get("shop", "cart")
		p.Labels["app"] = "cart"
		if err := w.c.Update(w.ctx, p); err != nil {
			t.Fatal(err)
		}
		w.waitPaused("shop", "cart", false, "labels back")
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = true })
		took := w.waitPaused("shop", "cart", true, "kill switch")
		t.Logf("kill switch -> pod annotated in %s", took.Round(time.Millisecond))
		if by := w.get("shop", "cart").Annotations[v1alpha1.AnnotationPausedBy]; !strings.Contains(by, "policy switch: paused (kill switch)") {
			t.Errorf("paused-by = %q, want the reason", by)
		}
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = false })
		w.waitPaused("shop", "cart", false, "unpaused")
		if a := w.get("shop", "hand-paused").Annotations; a[v1alpha1.AnnotationPaused] != "true" || a[v1alpha1.AnnotationPausedBy] != "" {
			t.Errorf("a pause a person set was touched: %v", a)
		}
	})

	t.Run("unpausing one policy keeps the pause of another that still is paused", func(t *testing.T) {
		w.t = t
		a := w.policy("a", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "two"})
		})
		b := w.policy("b", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "two"})
		})
		w.pod("shop", "two", runningDelay, map[string]string{"app": "two"}, nil, a, b)
		w.update(a, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = true })
		w.update(b, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = true })
		w.waitPaused("shop", "two", true, "both paused")
		w.update(a, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = false })
		w.stays("shop", "two", true, "b is still paused")
		w.update(b, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = false })
		w.waitPaused("shop", "two", false, "both unpaused")
	})

	t.Run("deleting a paused policy stops what it admitted for good, even when one of the same name comes back", func(t *testing.T) {
		w.t = t
		pol := w.policy("doomed", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "d"})
		})
		w.pod("shop", "d", runningDelay, map[string]string{"app": "d"}, nil, pol)
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) { s.Paused = true })
		w.waitPaused("shop", "d", true, "paused")
		if err := w.c.Delete(w.ctx, pol); err != nil {
			t.Fatal(err)
		}
		w.stays("shop", "d", true, "its policy deleted")
		w.policy("doomed", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "d"})
		})
		w.stays("shop", "d", true, "a new policy of the same name did not admit it")
		if by := w.get("shop", "d").Annotations[v1alpha1.AnnotationPausedBy]; !strings.Contains(by, "was deleted") {
			t.Errorf("paused-by = %q, want the deletion named", by)
		}
	})

	t.Run("a window that closes, a tightened limit and a namespace that opts out each stop running faults", func(t *testing.T) {
		w.t = t
		pol := w.policy("office-hours", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "w"})
			s.Windows = []v1alpha1.Window{{Start: "09:00", End: "17:00"}}
		})
		w.pod("shop", "w", runningDelay, map[string]string{"app": "w"}, nil, pol)
		w.stays("shop", "w", false, "inside the window")
		// 17:00:30: the next minute's recheck sees the window closed.
		w.now.Store(time.Date(2026, 11, 30, 17, 0, 30, 0, time.UTC).UnixNano())
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) {}) // an event, so the test need not wait a minute
		w.waitPaused("shop", "w", true, "window closed")
		w.now.Store(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixNano())
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) {})
		w.waitPaused("shop", "w", false, "window open again")

		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) { s.Limits.MaxDelay = "50ms" })
		w.waitPaused("shop", "w", true, "maxDelay now below the running delay")
		if by := w.get("shop", "w").Annotations[v1alpha1.AnnotationPausedBy]; !strings.Contains(by, "delay 100ms exceeds maxDelay 50ms") {
			t.Errorf("paused-by = %q, want the limit named", by)
		}
		w.update(pol, func(s *v1alpha1.ChaosPolicySpec) { s.Limits.MaxDelay = "1s" })
		w.waitPaused("shop", "w", false, "limit relaxed")

		var ns corev1.Namespace
		if err := w.c.Get(w.ctx, client.ObjectKey{Name: "shop"}, &ns); err != nil {
			t.Fatal(err)
		}
		delete(ns.Labels, v1alpha1.LabelNamespaceInjection)
		if err := w.c.Update(w.ctx, &ns); err != nil {
			t.Fatal(err)
		}
		took := w.waitPaused("shop", "w", true, "namespace opted out")
		t.Logf("namespace label removed -> pod paused in %s", took.Round(time.Millisecond))
		ns.Labels[v1alpha1.LabelNamespaceInjection] = v1alpha1.NamespaceInjectionOn
		if err := w.c.Update(w.ctx, &ns); err != nil {
			t.Fatal(err)
		}
		w.waitPaused("shop", "w", false, "namespace opted in again")
	})

	t.Run("a new policy that selects a running pod binds it too", func(t *testing.T) {
		w.t = t
		pol := w.policy("first", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "n"})
		})
		w.pod("shop", "n", runningDelay, map[string]string{"app": "n"}, nil, pol)
		w.stays("shop", "n", false, "allowed")
		w.policy("stricter", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "n"})
			s.Limits = v1alpha1.Limits{MaxLoss: "1%"}
		})
		w.waitPaused("shop", "n", true, "a stricter policy allows no delay")
	})

	t.Run("a pod without an admission record or with an unreadable spec is stopped", func(t *testing.T) {
		w.t = t
		pol := w.policy("rec", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "r"})
		})
		w.pod("shop", "forged", runningDelay, map[string]string{"app": "r"}, map[string]string{v1alpha1.AnnotationAdmitted: "[]"}, pol)
		w.waitPaused("shop", "forged", true, "empty record")
		w.pod("shop", "bad-spec", `{"network":[{"delay":"forever"}]}`, map[string]string{"app": "r"}, nil, pol)
		w.waitPaused("shop", "bad-spec", true, "unreadable spec")
	})

	t.Run("maxPercent holds against the pods that exist: the newest admitted beyond it are paused", func(t *testing.T) {
		w.t = t
		pol := w.policy("pct", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "q"})
			s.BlastRadius = &v1alpha1.BlastRadius{MaxPercent: "30%", GroupBy: []string{"app"}}
		})
		// Admission counted 100 desired replicas; a quota let 4 exist,
		// all admitted: 30% of 4 allows 1.
		for i := range 4 {
			w.pod("shop", fmt.Sprintf("q%d", i), runningDelay, map[string]string{"app": "q"}, nil, pol)
			time.Sleep(1100 * time.Millisecond) // creationTimestamp has second resolution
		}
		w.waitPaused("shop", "q3", true, "4th admitted")
		w.waitPaused("shop", "q2", true, "3rd admitted")
		w.waitPaused("shop", "q1", true, "2nd admitted")
		w.stays("shop", "q0", false, "the first admitted is within 30% of 4")
		if by := w.get("shop", "q3").Annotations[v1alpha1.AnnotationPausedBy]; !strings.Contains(by, "maxPercent 30% of the 4 pods that exist allows 1") {
			t.Errorf("paused-by = %q, want the count named", by)
		}
		// status.injectedPods counts what the policy admitted and runs.
		waitUntil(t, 10*time.Second, "status.injectedPods = 4", func() bool {
			var p v1alpha1.ChaosPolicy
			_ = w.c.Get(w.ctx, client.ObjectKeyFromObject(pol), &p)
			return p.Status.InjectedPods == 4 && testutil.ToFloat64(w.gauges.injected.WithLabelValues("pct")) == 4
		})
	})

	t.Run("a policy whose abortWhen cannot be evaluated pauses what it admitted and admits nothing", func(t *testing.T) {
		w.t = t
		pol := w.policy("slo", func(s *v1alpha1.ChaosPolicySpec) {
			s.PodSelector = metav1.SetAsLabelSelector(map[string]string{"app": "s"})
			s.AbortWhen = &v1alpha1.AbortCondition{PrometheusURL: "http://127.0.0.1:1", Query: "up", Threshold: "1"}
		})
		// As if Prometheus had answered once for this generation.
		if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
			t.Fatal(err)
		}
		meta.SetStatusCondition(&pol.Status.Conditions, metav1.Condition{Type: policy.ConditionAbortEvaluated, Status: metav1.ConditionTrue,
			Reason: "Evaluated", Message: "ok", ObservedGeneration: pol.Generation})
		if err := w.c.Status().Update(w.ctx, pol); err != nil {
			t.Fatal(err)
		}
		w.pod("shop", "s", runningDelay, map[string]string{"app": "s"}, nil, pol)
		w.stays("shop", "s", false, "abortWhen answers")
		aw := &AbortWatcher{Client: w.c}
		aw.evaluate(w.ctx, time.Now()) // Prometheus at 127.0.0.1:1 refuses
		took := w.waitPaused("shop", "s", true, "abortWhen dark")
		t.Logf("abortWhen unreachable -> pod paused in %s after the evaluation", took.Round(time.Millisecond))
		if by := w.get("shop", "s").Annotations[v1alpha1.AnnotationPausedBy]; !strings.Contains(by, "abortWhen cannot be evaluated") {
			t.Errorf("paused-by = %q", by)
		}
		if err := w.c.Get(w.ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
			t.Fatal(err)
		}
		req := &policy.Request{Pod: w.get("shop", "s"), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "enabled", "kubernetes.io/metadata.name": "shop"}, NamespaceKnown: true}
		spec, _ := v1alpha1.ParseFaultSpec(runningDelay, nil)
		d := (&policy.Policies{Source: policy.StaticPolicies{*pol}}).Limit(w.ctx, req, spec)
		if d.Inject || d.Code() != policy.CodeAbortUnknown {
			t.Errorf("admission while abortWhen is dark: inject=%v code=%s (%s)", d.Inject, d.Code(), d.Message())
		}
	})
}
