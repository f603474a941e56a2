//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 15. Policies bind running pods, on the real node: a limit tightened below
// what runs stops the faults and relaxing it brings them back; the tenant
// cannot lift the pause faultline set; deleting the policy stops them for
// good, even when a policy of the same name comes back.
func TestScenario15PoliciesBindRunningPods(t *testing.T) {
	ctx := context.Background()
	newPolicy := func() *v1alpha1.ChaosPolicy {
		return &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bind"}, Spec: v1alpha1.ChaosPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bound"}},
			Limits:            v1alpha1.Limits{MaxDelay: "200ms"},
		}}
	}
	pol := newPolicy()
	if err := k8s.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = k8s.Delete(ctx, newPolicy()) }()
	createPod(t, ctx, "shop", "bound", "network: [{delay: 100ms}]", true, func(p *corev1.Pod) { p.Labels["app"] = "bound" })
	pod := running(t, ctx, "shop", "bound")
	defer func() { _ = k8s.Delete(ctx, pod) }()
	waitFor(t, ctx, 30*time.Second, "the agent to apply", func() bool { return agentActive(t, pod.Status.PodIP, "delay") })
	gone := func() bool { return faultlineRules(t, ctx, pod) == 0 }
	back := func() bool { return faultlineRules(t, ctx, pod) > 0 }
	setMaxDelay := func(v string) {
		if err := k8s.Get(ctx, client.ObjectKey{Name: "bind"}, pol); err != nil {
			t.Fatal(err)
		}
		pol.Spec.Limits.MaxDelay = v
		if err := k8s.Update(ctx, pol); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	setMaxDelay("50ms")
	waitFor(t, ctx, 30*time.Second, "faults gone after maxDelay fell below the running delay", gone)
	tightened := time.Since(start)
	var p corev1.Pod
	_ = k8s.Get(ctx, client.ObjectKeyFromObject(pod), &p)
	why := p.Annotations[v1alpha1.AnnotationPausedBy]
	// The tenant (any user but faultline's ServiceAccount) tries to lift it.
	lift := []byte(`{"metadata":{"annotations":{"faultline.dev/paused":null}}}`)
	liftErr := k8s.Patch(ctx, &p, client.RawPatch(types.MergePatchType, lift))
	start = time.Now()
	setMaxDelay("200ms")
	waitFor(t, ctx, 30*time.Second, "faults back after the limit was relaxed", back)
	relaxed := time.Since(start)

	start = time.Now()
	if err := k8s.Delete(ctx, pol); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 30*time.Second, "faults gone after the policy was deleted", gone)
	deleted := time.Since(start)
	if err := k8s.Create(ctx, newPolicy()); err != nil {
		t.Fatal(err)
	}
	// No policy, no chaos: a new policy of the same name did not admit
	// the pod, so its faults stay gone, checked throughout 5 s.
	stayed := true
	for end := time.Now().Add(5 * time.Second); stayed && time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		stayed = gone()
	}

	pass := liftErr != nil && strings.Contains(liftErr.Error(), "only faultline lifts that pause") &&
		strings.Contains(why, "exceeds maxDelay 50ms") && stayed
	record("15 policies bind running pods", "delay 100ms; maxDelay tightened to 50ms and back, tenant lifts the pause, policy deleted and recreated",
		fmt.Sprintf("faults gone %s after the limit fell (paused-by %q), back %s after it was relaxed; tenant's lift refused: %v; gone %s after the deletion, still gone 5 s after a new policy of the same name: %v",
			tightened.Round(10*time.Millisecond), why, relaxed.Round(10*time.Millisecond), liftErr != nil, deleted.Round(10*time.Millisecond), stayed), pass)
	if !pass {
		t.Fatalf("lift error %v, paused-by %q, stayed gone %v", liftErr, why, stayed)
	}
}
