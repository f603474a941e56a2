package webhook

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/policy/controllers"
)

// roundRobin spreads admissions over several handlers, each with its own
// client: replicas that share nothing but the API server.
type roundRobin struct {
	n        atomic.Uint64
	handlers []admission.Handler
}

func (r *roundRobin) Handle(ctx context.Context, req admission.Request) admission.Response {
	return r.handlers[r.n.Add(1)%uint64(len(r.handlers))].Handle(ctx, req)
}

// Three webhook replicas, 200 pods created at once, maxPods 10: exactly 10
// get chaos, counted from the API; deleting one frees its slot.
func TestBlastRadiusHoldsAcrossReplicas(t *testing.T) {
	env := injectorEnv(false)
	cfg, scheme, c := testenv.APIServer(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setupShop(t, ctx, c, "capped", &v1alpha1.BlastRadius{MaxPods: ptr.To[int32](10), GroupBy: []string{"app"}})
	var reservers []*controllers.LeaseReserver
	rr := &roundRobin{}
	for i := 0; i < 3; i++ {
		ci, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		res := &controllers.LeaseReserver{Client: ci, Namespace: "faultline-system"}
		reservers = append(reservers, res)
		rr.handlers = append(rr.handlers, &Handler{
			Decider: &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
				Limiter: &policy.Policies{Source: ClientPolicies{Reader: ci}, Reserver: res}},
			Namespaces: ClientNamespaces{Reader: ci},
			Injector:   NewInjector(DefaultConfig()),
		})
	}
	serveWebhook(t, ctx, env.WebhookInstallOptions, rr)

	create := func(name string) error {
		return c.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop",
				Labels:      map[string]string{v1alpha1.LabelPodInject: "true", "app": "web"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		})
	}
	injected := func() []corev1.Pod {
		var l corev1.PodList
		if err := c.List(ctx, &l, client.InNamespace("shop")); err != nil {
			t.Fatal(err)
		}
		var out []corev1.Pod
		for _, p := range l.Items {
			if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; ok {
				out = append(out, p)
			}
		}
		return out
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	start := time.Now()
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := create(fmt.Sprintf("web-%03d", i)); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a pod was not created: %v", err)
	}
	got := injected()
	t.Logf("200 concurrent creations over 3 replicas in %s: %d injected (maxPods 10)", time.Since(start).Round(time.Millisecond), len(got))
	if len(got) != 10 {
		t.Fatalf("%d pods injected, want exactly 10", len(got))
	}

	// Deleting an injected pod frees its slot once the sweeper has run.
	if err := c.Delete(ctx, &got[0], client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := create("web-blocked"); err != nil {
		t.Fatal(err)
	}
	if len(injected()) != 9 {
		t.Fatalf("a pod was injected while the slot was still held")
	}
	if err := reservers[0].Sweep(ctx, time.Now().Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := create("web-after-sweep"); err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	_ = c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web-after-sweep"}, &p)
	if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; !ok {
		t.Fatalf("after the sweep the freed slot was not used")
	}
}

// maxPercent: a 10-pod group created one by one under 30% ends with exactly 3
// pods with chaos (the cap rounds down, counting the pod being admitted).
func TestBlastRadiusMaxPercent(t *testing.T) {
	env := injectorEnv(false)
	_, _, c := testenv.APIServer(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	setupShop(t, ctx, c, "thirty", &v1alpha1.BlastRadius{MaxPercent: "30%", GroupBy: []string{"app"}})
	res := &controllers.LeaseReserver{Client: c, Namespace: "faultline-system"}
	serveWebhook(t, ctx, env.WebhookInstallOptions, &Handler{
		Decider: &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
			// Group sizes by List: exact at every step of a one-by-one rollout
			// (TestGroupCounterAgreesWithTheAPIServer checks the informer path).
			Limiter: &policy.Policies{Source: ClientPolicies{Reader: c}, Reserver: res, Groups: res}},
		Namespaces: ClientNamespaces{Reader: c},
		Injector:   NewInjector(DefaultConfig()),
	})
	n := 0
	for i := 0; i < 10; i++ {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "shop",
				Labels:      map[string]string{v1alpha1.LabelPodInject: "true", "app": "web"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Annotations[v1alpha1.AnnotationStatus]; ok {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d of 10 pods injected under maxPercent 30%%, want 3", n)
	}
}

// setupShop creates faultline's namespace, an opted-in "shop" namespace and a
// policy allowing delay under the given blast radius.
func setupShop(t *testing.T, ctx context.Context, c client.Client, name string, br *v1alpha1.BlastRadius) {
	t.Helper()
	for ns, labels := range map[string]map[string]string{
		"faultline-system": nil,
		"shop":             {v1alpha1.LabelNamespaceInjection: "enabled"},
	} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ChaosPolicySpec{
		Limits: v1alpha1.Limits{MaxDelay: "1s"}, BlastRadius: br,
	}}); err != nil {
		t.Fatal(err)
	}
}
