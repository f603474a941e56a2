//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 5. A 10-replica Deployment under maxPercent 30%: exactly 3 injected;
// deleting one lets its replacement be injected.
func TestScenario5BlastRadius(t *testing.T) {
	ctx := context.Background()
	pol := &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "cart-thirty-percent"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
		Limits:            v1alpha1.Limits{MaxDelay: "1s"},
		BlastRadius:       &v1alpha1.BlastRadius{MaxPercent: "30%", GroupBy: []string{"app"}},
	}}
	if err := k8s.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	defer k8s.Delete(ctx, pol)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](10),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cart", v1alpha1.LabelPodInject: "true"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 50ms}]"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: appImage}}},
		}}}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	pods := func() (all, chaos []corev1.Pod) {
		var l corev1.PodList
		_ = k8s.List(ctx, &l, client.InNamespace("shop"), client.MatchingLabels{"app": "cart"})
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			all = append(all, p)
			if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; ok {
				chaos = append(chaos, p)
			}
		}
		return all, chaos
	}
	waitFor(t, ctx, 60*time.Second, "10 cart pods", func() bool { all, _ := pods(); return len(all) == 10 })
	_, chaos := pods()
	first := len(chaos)
	if first == 0 {
		t.Fatal("no cart pod injected")
	}
	victim := chaos[0]
	if err := k8s.Delete(ctx, &victim, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	var replacedIn time.Duration
	var after int
	start := time.Now()
	waitFor(t, ctx, 60*time.Second, "the replacement pod", func() bool {
		all, chaos := pods()
		for _, p := range all {
			if p.UID == victim.UID {
				return false
			}
		}
		after, replacedIn = len(chaos), time.Since(start)
		return len(all) == 10
	})
	pass := first == 3 && after == 3
	record("5 blast radius", "10 replicas, maxPercent 30%",
		fmt.Sprintf("%d of 10 injected; after deleting one, its replacement (%s later) makes %d", first, replacedIn.Round(time.Millisecond), after), pass)
	if !pass {
		t.Fatalf("%d injected at first, %d after the replacement; want 3 and 3", first, after)
	}
}
