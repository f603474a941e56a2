package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
)

// Against a real API server: the informer-fed counter agrees with a List,
// and until the informer syncs the List answers.
func TestGroupCounterAgreesWithTheAPIServer(t *testing.T) {
	cfg, scheme, c := testenv.APIServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	mk := func(name, app string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		mk(fmt.Sprintf("web-%d", i), "web")
	}
	mk("db-0", "db")

	list := &LeaseReserver{Client: c}
	g := policy.NewGroupCounter(list, nil)
	informers, err := ctrlcache.New(cfg, ctrlcache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := WatchGroups(ctx, informers, g); err != nil {
		t.Fatal(err)
	}
	admitted := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{"app": "web"}}}
	if n, _ := g.GroupSize(ctx, admitted, []string{"app"}); n != 5 {
		t.Fatalf("before the informer started (List fallback): %d, want 5", n)
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("informer did not sync")
	}
	mk("web-5", "web")
	if err := c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the counter agrees with List", func() bool {
		want, err := list.GroupSize(ctx, admitted, []string{"app"})
		got, _ := g.GroupSize(ctx, admitted, []string{"app"})
		all, _ := g.GroupSize(ctx, admitted, nil)
		return err == nil && got == want && got == 6 && all == 6
	})
	if g.Tracked() != 6 {
		t.Fatalf("tracking %d pods, want 6", g.Tracked())
	}
}
