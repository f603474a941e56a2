//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// 7. The webhook killed: pods are still created (without chaos); once it is
// back, the pods that wanted chaos and missed it are reported.
func TestScenario7WebhookOutage(t *testing.T) {
	ctx := context.Background()
	scale := func(n string) {
		if out, err := kubectl(ctx, "-n", ownNS, "scale", "deployment/faultline", "--replicas="+n); err != nil {
			t.Fatalf("kubectl scale: %v: %s", err, out)
		}
	}
	// The injector gone, as in a node drain or a bad rollout.
	scale("0")
	waitFor(t, ctx, 60*time.Second, "the webhook pods to be gone", func() bool {
		var l corev1.PodList
		_ = k8s.List(ctx, &l, client.InNamespace(ownNS))
		return len(l.Items) == 0
	})
	start := time.Now()
	createPod(t, ctx, "shop", "while-down", "network: [{delay: 100ms}]", true, nil)
	created := time.Since(start)
	var p corev1.Pod
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "while-down"}, &p); err != nil {
		t.Fatal(err)
	}
	_, injected := p.Annotations[v1alpha1.AnnotationStatus]
	restarted := time.Now()
	scale("2")
	if out, err := kubectl(ctx, "-n", ownNS, "rollout", "status", "deployment/faultline", "--timeout=120s"); err != nil {
		t.Fatalf("webhook back: %v: %s", err, out)
	}
	// Ready pods are not yet a Service kube-proxy routes to: until it does,
	// failurePolicy Ignore admits pods uninjected (a later scenario's pod
	// was, once). Wait until an admission is really injected.
	waitInjecting(t, ctx)
	var ev []string
	reportedIn := waitFor(t, ctx, 90*time.Second, "the missed pod to be reported", func() bool {
		ev = events(t, ctx, "shop", "while-down")
		for _, e := range ev {
			if strings.HasPrefix(e, "FaultsMissed") {
				return true
			}
		}
		return false
	})
	_ = k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "while-down"}, &p)
	marked := p.Annotations[v1alpha1.AnnotationMissed] == "true"
	pass := !injected && marked
	record("7 webhook outage", "webhook Deployment scaled to 0, a pod created, scaled back to 2",
		fmt.Sprintf("pod created in %s without chaos; FaultsMissed Event %s after the restart (%s after the webhook was back, leader lease takeover included)",
			created.Round(time.Millisecond), (time.Since(restarted)).Round(100*time.Millisecond), reportedIn.Round(100*time.Millisecond)), pass)
	if !pass {
		t.Fatalf("injected=%v marked=%v events=%v", injected, marked, ev)
	}
}
