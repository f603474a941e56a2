package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Slots are keyed by the UID of the pod that holds them and checked against
// the API server, not against what a replica's informer saw or what any
// pod's annotation claims.
func TestBlastRadiusSlotsBelongToPodsTheAPIServerKnows(t *testing.T) {
	_, _, c := testenv.APIServer(t, nil)
	ctx := context.Background()
	for _, ns := range []string{"faultline-system", "shop", "rival"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	r := &LeaseReserver{Client: c, Namespace: "faultline-system"}
	mkpod := func(ns, name, reservation string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Annotations: map[string]string{v1alpha1.AnnotationReservations: reservation}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	reserve := func(group, id string) string {
		t.Helper()
		res, _, err := r.Reserve(ctx, "one", group, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	t.Run("a replacement created the moment its predecessor is deleted gets the slot, with no sweeper or informer", func(t *testing.T) {
		res := reserve("shop,app=a", "adm-1")
		p := mkpod("shop", "a-1", res)
		if err := r.Bind(ctx, res, "shop", p.UID); err != nil {
			t.Fatal(err)
		}
		if got := reserve("shop,app=a", "adm-2"); got != "" {
			t.Fatalf("a second slot was given while the first pod lives: %s", got)
		}
		if err := c.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		if got := reserve("shop,app=a", "adm-3"); got == "" {
			t.Fatal("the deleted pod's bound slot still counted (the e2e 5 race)")
		}
	})

	t.Run("a slot whose pod is not created yet is kept while its admission may be in flight", func(t *testing.T) {
		reserve("shop,app=b", "adm-4")
		if got := reserve("shop,app=b", "adm-5"); got != "" {
			t.Fatalf("a fresh unclaimed slot was taken over: %s", got)
		}
	})

	t.Run("a pod of another namespace that copies a reservation can neither hold, bind nor release it", func(t *testing.T) {
		res := reserve("shop,app=c", "adm-6")
		owner := mkpod("shop", "c-1", res)
		forger := mkpod("rival", "copycat", res)
		if err := r.Bind(ctx, res, "rival", forger.UID); err != nil {
			t.Fatal(err)
		}
		if err := r.ReleaseFor(ctx, res, "rival", forger.UID); err != nil {
			t.Fatal(err)
		}
		l := lease(t, c, res)
		if s := reservations(l)["adm-6"]; s.UID != "" {
			t.Fatalf("the copy bound the slot: %+v", s)
		}
		if err := r.Bind(ctx, res, "shop", owner.UID); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, owner, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		// The copy still lists the slot; the sweep frees it anyway.
		if err := r.Sweep(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, held := reservations(lease(t, c, res))["adm-6"]; held {
			t.Fatal("a pod in another namespace kept the slot alive")
		}
	})

	t.Run("a Lease left empty is deleted by the sweep once the grace period has passed", func(t *testing.T) {
		res := reserve("shop,app=d", "adm-7")
		if err := r.Release(ctx, res); err != nil {
			t.Fatal(err)
		}
		if err := r.Sweep(ctx, time.Now().Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		var l coordinationv1.Lease
		if err := c.Get(ctx, client.ObjectKey{Namespace: "faultline-system", Name: leaseName("one", "shop,app=d")}, &l); !apierrors.IsNotFound(err) {
			t.Fatalf("empty Lease still there: %v", err)
		}
	})
}

func lease(t *testing.T, c client.Client, reservation string) *coordinationv1.Lease {
	t.Helper()
	var l coordinationv1.Lease
	name := reservation[:len("faultline-br-")+16]
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "faultline-system", Name: name}, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

// Many admissions racing for one group's Lease all get an answer: client-go's
// retry with backoff spreads the writers out (issue 12 item 13: 20 retries
// with no pause ran out under contention and refused with "too much
// contention"), and exactly max of them get a slot.
func TestManyAdmissionsRacingForOneLeaseAllGetAnswers(t *testing.T) {
	cfg, scheme, c := testenv.APIServer(t, nil)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "faultline-system"}}); err != nil {
		t.Fatal(err)
	}
	const racers, max = 48, 40
	type result struct {
		res string
		err error
	}
	results := make(chan result, racers)
	start := make(chan struct{})
	for i := range racers {
		ci, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		r := &LeaseReserver{Client: ci, Namespace: "faultline-system"}
		go func() {
			<-start
			res, _, err := r.Reserve(ctx, "busy", "shop,app=web", fmt.Sprintf("adm-%d", i), max)
			results <- result{res, err}
		}()
	}
	close(start)
	got, failed := 0, 0
	var firstErr error
	for range racers {
		r := <-results
		switch {
		case r.err != nil:
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
		case r.res != "":
			got++
		}
	}
	t.Logf("%d admissions at once for one Lease (max %d): %d slots, %d errors", racers, max, got, failed)
	if failed > 0 {
		t.Errorf("%d admissions failed: %v", failed, firstErr)
	}
	if got != max {
		t.Errorf("%d slots given, want exactly %d", got, max)
	}
}
