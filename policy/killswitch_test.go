package policy

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The kill switch against a real API server: pausing a policy marks the
// injected pods it selects, leaves others and hand-set pauses alone, and
// unpausing lifts exactly what it set.
func TestKillSwitchMarksAndUnmarksInjectedPods(t *testing.T) {
	cfg, scheme, c := testenv.APIServer(t, nil)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&KillSwitch{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = mgr.Start(ctx) }()

	for _, ns := range []string{"shop", "other"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	mkpod := func(ns, name string, ann map[string]string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	injected := map[string]string{v1alpha1.AnnotationStatus: "{}"}
	mkpod("shop", "chaotic", injected)
	mkpod("shop", "plain", nil)
	mkpod("other", "elsewhere", injected)
	mkpod("shop", "hand-paused", map[string]string{v1alpha1.AnnotationStatus: "{}", v1alpha1.AnnotationPaused: "true"})

	pol := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop-chaos"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		Limits:            v1alpha1.Limits{MaxDelay: "1s"},
	}}
	if err := c.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	ann := func(ns, name string) map[string]string {
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		return p.Annotations
	}
	waitFor := func(what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}

	waitFor("status to count the injected pods in scope", func() bool {
		var p v1alpha1.ChaosPolicy
		_ = c.Get(ctx, client.ObjectKeyFromObject(pol), &p)
		return p.Status.InjectedPods == 2 // chaotic and hand-paused
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
		t.Fatal(err)
	}
	pol.Spec.Paused = true
	if err := c.Update(ctx, pol); err != nil {
		t.Fatal(err)
	}
	took := waitFor("the injected pod in scope to be paused", func() bool {
		a := ann("shop", "chaotic")
		return a[v1alpha1.AnnotationPaused] == "true" && a[v1alpha1.AnnotationPausedBy] == "shop-chaos"
	})
	t.Logf("kill switch -> pod annotated in %s", took.Round(time.Millisecond))
	// The gauges are set at the end of the same reconcile.
	waitFor("faultline_policy_paused=1 and faultline_policy_injected_pods=2", func() bool {
		return testutil.ToFloat64(policyPaused.WithLabelValues("shop-chaos")) == 1 && testutil.ToFloat64(policyInjectedPods.WithLabelValues("shop-chaos")) == 2
	})
	if a := ann("shop", "plain"); a[v1alpha1.AnnotationPaused] != "" {
		t.Errorf("a pod without chaos was marked: %v", a)
	}
	if a := ann("other", "elsewhere"); a[v1alpha1.AnnotationPaused] != "" {
		t.Errorf("a pod outside the policy was marked: %v", a)
	}
	if a := ann("shop", "hand-paused"); a[v1alpha1.AnnotationPausedBy] != "" {
		t.Errorf("a hand-set pause was taken over: %v", a)
	}

	if err := c.Get(ctx, client.ObjectKeyFromObject(pol), pol); err != nil {
		t.Fatal(err)
	}
	pol.Spec.Paused = false
	if err := c.Update(ctx, pol); err != nil {
		t.Fatal(err)
	}
	waitFor("unpausing to lift the pause", func() bool {
		a := ann("shop", "chaotic")
		return a[v1alpha1.AnnotationPaused] == "" && a[v1alpha1.AnnotationPausedBy] == ""
	})
	if a := ann("shop", "hand-paused"); a[v1alpha1.AnnotationPaused] != "true" {
		t.Errorf("unpausing lifted a pause a person set: %v", a)
	}
}
