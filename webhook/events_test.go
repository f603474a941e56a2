package webhook

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/policy/controllers"
)

// Decisions reach the pod's owner as Events on the pod, once the pod
// exists: named pods, generateName pods, refusals and injections; a dry-run
// creation emits nothing and reserves nothing.
func TestDecisionsBecomeEventsOnPods(t *testing.T) {
	env := injectorEnv(false)
	cfg, scheme, c := testenv.APIServer(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	setupShop(t, ctx, c, "shop-chaos", &v1alpha1.BlastRadius{MaxPods: ptr32(5)})

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	notifier := NewNotifier(mgr.GetEventRecorder("faultline-webhook"), time.Minute)
	if _, err := controllers.WatchPodMetadata(ctx, mgr.GetCache(), notifier); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	leases := &controllers.LeaseReserver{Client: c, Namespace: "faultline-system"}
	serveWebhook(t, ctx, env.WebhookInstallOptions, &Handler{
		Decider: &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
			Limiter: &policy.Policies{Source: ClientPolicies{Reader: c}, Reserver: leases, Groups: leases}},
		Namespaces: ClientNamespaces{Reader: c},
		Injector:   NewInjector(DefaultConfig()),
		Notifier:   notifier,
	})

	create := func(name, generateName, faults string, opts ...client.CreateOption) *corev1.Pod {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, GenerateName: generateName, Namespace: "shop",
				Labels:      map[string]string{v1alpha1.LabelPodInject: "true", "app": "web"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: faults}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if err := c.Create(ctx, p, opts...); err != nil {
			t.Fatal(err)
		}
		return p
	}
	eventsOf := func(pod string) []eventsv1.Event {
		var l eventsv1.EventList
		if err := c.List(ctx, &l, client.InNamespace("shop")); err != nil {
			t.Fatal(err)
		}
		var out []eventsv1.Event
		for _, e := range l.Items {
			if e.Regarding.Name == pod {
				out = append(out, e)
			}
		}
		return out
	}
	waitEvent := func(t *testing.T, pod, reason, contains string) {
		t.Helper()
		start := time.Now()
		defer func() { t.Logf("Event seen %s after the pod was created", time.Since(start).Round(time.Millisecond)) }()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			for _, e := range eventsOf(pod) {
				if e.Reason == reason && strings.Contains(e.Note, contains) {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("no %s Event containing %q on %s; have %v", reason, contains, pod, eventsOf(pod))
		}
	}

	t.Run("a pod over a limit gets a Warning Event naming the policy and the limit", func(t *testing.T) {
		create("too-much", "", "network: [{delay: 2s}]")
		waitEvent(t, "too-much", EventNotInjected, "policy shop-chaos: network[0].delay 2s exceeds maxDelay 1s")
	})
	t.Run("an injected generateName pod gets a Normal Event saying which policy allowed it", func(t *testing.T) {
		p := create("", "web-", "network: [{delay: 100ms}]")
		waitEvent(t, p.Name, EventInjected, "allowed by ChaosPolicy shop-chaos")
	})
	t.Run("the owning workload gets the decision at admission, whatever happens to the replica", func(t *testing.T) {
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-rs", Namespace: "shop"}, Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
		if err := c.Create(ctx, rs, client.DryRunAll); err != nil { // no controller runs here: the object need not exist
			t.Fatal(err)
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-rs-", Namespace: "shop",
			Labels:          map[string]string{v1alpha1.LabelPodInject: "true", "app": "web"},
			Annotations:     map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 3s}]"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-rs", UID: "rs-uid", Controller: ptrTrue()}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, "web-rs", EventNotInjected, "pod web-rs-*: not injected: policy shop-chaos: network[0].delay 3s exceeds maxDelay 1s")
	})
	t.Run("a dry-run creation emits no Event and reserves no slot", func(t *testing.T) {
		p := create("dry", "", "network: [{delay: 100ms}]", client.DryRunAll)
		if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; !ok {
			t.Fatal("the dry run does not preview the injection")
		}
		if r := p.Annotations[v1alpha1.AnnotationReservations]; r != "" {
			t.Fatalf("dry run reserved %s", r)
		}
		if n := notifier.Pending(); n != 0 {
			t.Fatalf("%d decisions wait for a pod after a dry run", n)
		}
	})
}

func ptr32(v int32) *int32 { return &v }

func ptrTrue() *bool { b := true; return &b }
