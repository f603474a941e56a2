//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 18. A static Go app's clock, skewed from the sidecar: in a namespace whose
// ChaosPolicy allows clockVDSO, the agent patches the app's vDSO; the
// app's own time.Now, read from outside in its HTTP Date header, is 5
// minutes ahead of the node's clock.
func TestScenario18StaticGoClockThroughTheVDSO(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clocks", Labels: map[string]string{v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn}}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 30*time.Second, "the default ServiceAccount", func() bool {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "clocks", Name: "default"}, &corev1.ServiceAccount{}) == nil
	})
	pol := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "clocks"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "clocks"}},
		Limits:            v1alpha1.Limits{MaxClockOffset: "10m", ClockVDSO: true},
	}}
	if err := k8s.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), pol) })
	// The webhook's informer sees the new policy within moments: until it
	// does, a pod is admitted without chaos (no policy, no chaos).
	var pod *corev1.Pod
	for i := 0; pod == nil; i++ {
		name := fmt.Sprintf("go-clock-%d", i)
		p := createPod(t, ctx, "clocks", name, "clock: {offset: +5m}", true, nil)
		if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; ok {
			pod = running(t, ctx, "clocks", name)
			break
		}
		_ = k8s.Delete(ctx, p)
		if i == 20 {
			t.Fatal("the webhook never injected a pod under the new policy")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The app is the static Go echo server: net/http stamps each answer
	// with its time.Now, in whole seconds.
	skew := func() (float64, error) {
		resp, err := http.Get("http://" + pod.Status.PodIP + ":8080/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		now := time.Now()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			return 0, err
		}
		return d.Sub(now.Truncate(time.Second)).Seconds(), nil
	}
	var off float64
	start := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if off, err = skew(); err == nil && math.Abs(off-300) <= 1 {
			break
		}
		if time.Now().After(deadline) {
			st, _ := agentStatus(t, ctx, pod)
			t.Fatalf("the app's clock is %+.0f s off after 30 s (%v); agent /status %s\nagent log:\n%s", off, err, st, containerLog(t, ctx, "clocks", pod.Name, "faultline-agent"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	metrics, _ := agentGet(pod.Status.PodIP, "/metrics")
	status := pod.Annotations[v1alpha1.AnnotationStatus]
	shared := pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace
	pass := math.Abs(off-300) <= 1 && shared && strings.Contains(metrics, `faultline_agent_clock_processes{method="vdso"} 1`) && strings.Contains(status, "vDSO patch")
	record("18 static Go clock (vDSO)", "offset +5m on a static Go app (the echo server); ChaosPolicy with clockVDSO: true",
		fmt.Sprintf("the app's Date header %+.0f s from the node's clock (%.1f s after Running); shareProcessNamespace %v; agent: %s; status clockMethod in place: %v",
			off, took.Seconds(), shared, grep(metrics, `faultline_agent_clock_processes{method="vdso"}`), strings.Contains(status, "vDSO patch")), pass)
	if !pass {
		t.Fatalf("offset %.0f s, shared %v, metrics:\n%s\nstatus %s", off, shared, grep(metrics, "clock_processes"), status)
	}
}
