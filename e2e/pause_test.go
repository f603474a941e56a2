//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func intOrString(s string) intstr.IntOrString { return intstr.FromString(s) }

// 6. The pause annotation, then the policy kill switch, 20 times each: time
// from the API write to the pod's rules being gone, on the real node (the
// kubelet refreshes the downward-API file on its own schedule).
func TestScenario6PauseAndKillSwitch(t *testing.T) {
	ctx := context.Background()
	createPod(t, ctx, "shop", "pausable", "network: [{delay: 100ms}]", true, nil)
	pod := running(t, ctx, "shop", "pausable")
	waitFor(t, ctx, 30*time.Second, "the agent to apply the delay", func() bool { return agentActive(t, pod.Status.PodIP, "delay") })
	before := rtt(t, "http://"+pod.Status.PodIP+":8080/", 10)
	annotate := func(v *string) {
		var p corev1.Pod
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "pausable"}, &p); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(p.Annotations, v1alpha1.AnnotationPaused)
		} else {
			p.Annotations[v1alpha1.AnnotationPaused] = *v
		}
		if err := k8s.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	setPaused := func(paused bool) {
		var pol v1alpha1.ChaosPolicy
		if err := k8s.Get(ctx, client.ObjectKey{Name: "shop"}, &pol); err != nil {
			t.Fatal(err)
		}
		pol.Spec.Paused = paused
		if err := k8s.Update(ctx, &pol); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever happens, later scenarios get the policy and pod back as they
	// were (a failure here once left the kill switch on for all of them).
	defer func() {
		var pol v1alpha1.ChaosPolicy
		if k8s.Get(ctx, client.ObjectKey{Name: "shop"}, &pol) == nil && pol.Spec.Paused {
			pol.Spec.Paused = false
			_ = k8s.Update(ctx, &pol)
		}
		_ = k8s.Delete(ctx, pod)
	}()
	gone := func() bool { return faultlineRules(t, ctx, pod) == 0 }
	back := func() bool { return faultlineRules(t, ctx, pod) > 0 }
	const tries = 20
	var pauseTook, killTook []time.Duration
	var afterPause float64
	for i := 0; i < tries; i++ {
		start := time.Now()
		annotate(ptrTo("true"))
		waitFor(t, ctx, 60*time.Second, "faults gone after the pause annotation", gone)
		pauseTook = append(pauseTook, time.Since(start))
		if i == 0 {
			afterPause = rtt(t, "http://"+pod.Status.PodIP+":8080/", 10)
		}
		annotate(nil)
		waitFor(t, ctx, 60*time.Second, "faults back after unpausing", back)
	}
	for i := 0; i < tries; i++ {
		start := time.Now()
		setPaused(true)
		waitFor(t, ctx, 60*time.Second, "faults gone after the kill switch", gone)
		killTook = append(killTook, time.Since(start))
		setPaused(false)
		waitFor(t, ctx, 60*time.Second, "faults back after the kill switch is lifted", back)
	}
	p50 := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
	pmax := func(d []time.Duration) time.Duration { return slices.Max(d) }
	// The typical case must be within 5 s; the worst is reported as
	// measured. A CI rehearsal saw one try pass 10 s (cause not
	// established: the kill switch's cached reconcile, or the kubelet
	// refreshing the downward-API file only on its next sync); the table
	// says how often that happens.
	slow := 0
	for _, d := range append(slices.Clone(pauseTook), killTook...) {
		if d > 5*time.Second {
			slow++
		}
	}
	pass := p50(pauseTook) <= 5*time.Second && p50(killTook) <= 5*time.Second && afterPause < 10 && before > 90
	record("6 pause, kill switch", fmt.Sprintf("delay 100ms; faults gone ≤ 5 s after the change (%d tries each)", tries),
		fmt.Sprintf("RTT %.1f ms, %.1f ms paused; pause annotation: rules gone p50 %s, max %s; policy kill switch: p50 %s, max %s (API write to rules gone); %d of %d tries over 5 s",
			before, afterPause, p50(pauseTook).Round(time.Millisecond), pmax(pauseTook).Round(time.Millisecond),
			p50(killTook).Round(time.Millisecond), pmax(killTook).Round(time.Millisecond), slow, 2*tries), pass)
	if !pass {
		t.Fatalf("pause %v, kill switch %v, RTT after pause %.1f ms", pauseTook, killTook, afterPause)
	}
}
