package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// With no webhook registered (as when it is down), a pod that asked for
// chaos is created untouched; the reporter then tells its owner, once, and
// leaves alone the pods that never asked or that the injector refused.
func TestPodsCreatedWithoutTheInjectorAreReported(t *testing.T) {
	cfg, scheme, c := testenv.APIServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	missed := NewMissedCounter(prometheus.NewRegistry())
	if err := (&MissedReporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("faultline-webhook"),
		OwnNamespace: "faultline-system", Missed: missed}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	for ns, labels := range map[string]map[string]string{
		"shop":    {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn},
		"staging": {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionAll},
		"plain":   nil,
	} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(ns, name string, labels, ann map[string]string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: ann},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	optIn := map[string]string{v1alpha1.LabelPodInject: "true"}
	faults := map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}
	refused := map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 2s}]", v1alpha1.AnnotationDecision: "limit-exceeded"}
	mk("shop", "missed", optIn, faults)
	mk("staging", "missed-always-on", nil, faults)
	mk("shop", "refused", optIn, refused)
	mk("shop", "not-opted-in", nil, faults)
	mk("plain", "namespace-not-enabled", optIn, faults)

	reported := func(name, ns string) bool {
		var p corev1.Pod
		_ = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p)
		return p.Annotations[v1alpha1.AnnotationMissed] == "true"
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return reported("missed", "shop") && reported("missed-always-on", "staging"), nil
	}); err != nil {
		t.Fatalf("the missed pods were not reported: %v", err)
	}
	var evs corev1.EventList
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_ = c.List(ctx, &evs, client.InNamespace("shop"))
		return len(evs.Items) > 0, nil
	}); err != nil || evs.Items[0].Reason != EventMissed || evs.Items[0].InvolvedObject.Name != "missed" {
		t.Fatalf("no %s Event on shop/missed: %v %v", EventMissed, err, evs.Items)
	}
	// The others were created first and had their turn; none is reported
	// while the reporter keeps running.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, p := range [][2]string{{"refused", "shop"}, {"not-opted-in", "shop"}, {"namespace-not-enabled", "plain"}} {
			if reported(p[0], p[1]) {
				t.Fatalf("%s/%s was reported", p[1], p[0])
			}
		}
	}
	if n := testutil.ToFloat64(missed); n != 2 {
		t.Errorf("faultline_missed_injections_total = %v, want 2", n)
	}
}
