package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Sweep drops reservations that no pod of the group's namespace holds any
// more (after the grace period for ones never bound to a pod, at once for
// ones whose pod is gone), binds the others to their pod's UID, and deletes
// Leases left empty. It runs on the leader.
//
// Only a pod in the group's own namespace can hold a slot: a tenant who
// copies another team's reservation into their pod's annotation keeps
// nothing alive but their own namespace's slots.
func (r *LeaseReserver) Sweep(ctx context.Context, now time.Time) error {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods); err != nil {
		return err
	}
	type holder struct {
		ns  string
		uid types.UID
	}
	holders := map[string][]holder{}
	uids := map[types.UID]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		uids[p.UID] = true
		for _, res := range strings.Split(p.Annotations[v1alpha1.AnnotationReservations], ",") {
			if res != "" {
				holders[res] = append(holders[res], holder{p.Namespace, p.UID})
			}
		}
	}
	var leases coordinationv1.LeaseList
	if err := r.Client.List(ctx, &leases, client.InNamespace(r.Namespace), client.MatchingLabels{"app.kubernetes.io/name": "faultline"}); err != nil {
		return err
	}
	for i := range leases.Items {
		l := &leases.Items[i]
		ns, _, _ := strings.Cut(l.Annotations[annotationGroup], ",")
		res := reservations(l)
		changed := false
		for id, s := range res {
			var own *holder
			for _, h := range holders[l.Name+"/"+id] {
				if h.ns == ns && (s.UID == "" || s.UID == h.uid) {
					own = &h
					break
				}
			}
			switch {
			case own != nil && s.UID == "":
				res[id] = slot{At: s.At, UID: own.uid}
				changed = true
			case own == nil && ((s.UID != "" && !uids[s.UID]) || now.Sub(time.Unix(s.At, 0)) > reservationGrace):
				delete(res, id)
				changed = true
			}
		}
		var err error
		switch {
		case len(res) == 0 && now.Sub(l.CreationTimestamp.Time) > reservationGrace:
			// Empty for long enough: gone, so Leases do not pile up. The
			// precondition loses to any Reserve that got there first.
			rv := l.ResourceVersion
			err = r.Client.Delete(ctx, l, client.Preconditions{ResourceVersion: &rv})
		case changed:
			setReservations(l, res)
			err = r.Client.Update(ctx, l)
		}
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		} // a conflict is retried on the next sweep
	}
	return nil
}

// Release drops one reservation ("lease/id") at once.
func (r *LeaseReserver) Release(ctx context.Context, reservation string) error {
	return r.edit(ctx, reservation, func(res map[string]slot, id string) bool {
		if _, held := res[id]; !held {
			return false
		}
		delete(res, id)
		return true
	})
}

// ReleaseFor drops a reservation a deleted pod held: only when the pod was
// in the group's namespace and the slot is unbound or bound to that pod, so
// deleting a pod that merely copied another's reservation frees nothing.
func (r *LeaseReserver) ReleaseFor(ctx context.Context, reservation, namespace string, uid types.UID) error {
	return r.edit(ctx, reservation, func(res map[string]slot, id string) bool {
		s, held := res[id]
		if !held || (s.UID != "" && s.UID != uid) {
			return false
		}
		delete(res, id)
		return true
	}, namespace)
}

// Bind records the UID of the pod that holds a reservation, so that once
// the pod is gone a full group can tell from the API alone (dropDead). Only
// a pod of the group's namespace binds, and only an unbound slot.
func (r *LeaseReserver) Bind(ctx context.Context, reservation, namespace string, uid types.UID) error {
	return r.edit(ctx, reservation, func(res map[string]slot, id string) bool {
		s, held := res[id]
		if !held || s.UID != "" {
			return false
		}
		res[id] = slot{At: s.At, UID: uid}
		return true
	}, namespace)
}

// edit applies change to one Lease's reservations, retrying on conflict;
// with inNamespace, only when the Lease's group is in that namespace.
func (r *LeaseReserver) edit(ctx context.Context, reservation string, change func(map[string]slot, string) bool, inNamespace ...string) error {
	name, id, ok := strings.Cut(reservation, "/")
	if !ok {
		return fmt.Errorf("reservation %q: want LEASE/ID", reservation)
	}
	return retry.RetryOnConflict(leaseBackoff, func() error {
		var l coordinationv1.Lease
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &l); err != nil {
			return client.IgnoreNotFound(err)
		}
		if ns, _, _ := strings.Cut(l.Annotations[annotationGroup], ","); len(inNamespace) > 0 && ns != inNamespace[0] {
			return nil
		}
		res := reservations(&l)
		if !change(res, id) {
			return nil
		}
		setReservations(&l, res)
		return r.Client.Update(ctx, &l)
	})
}

// Sweeper frees blast-radius slots on the leader: at once when it sees a
// pod deleted (its reservations are in its annotation), binds slots to
// their pod's UID when it sees the pod, and runs a full Sweep every
// Interval for whatever an event missed (a restart, a pod that was never
// created). It is a manager.Runnable and, fed by the pod metadata
// informer, a ResourceEventHandler.
type Sweeper struct {
	Reserver *LeaseReserver
	Interval time.Duration

	once sync.Once
	work chan sweepItem
}

// sweepItem is a reservation seen on a pod, to bind to it or (gone) to
// release.
type sweepItem struct {
	res, namespace string
	uid            types.UID
	gone           bool
}

func (s *Sweeper) queue() chan sweepItem {
	s.once.Do(func() { s.work = make(chan sweepItem, 1024) })
	return s.work
}

func (s *Sweeper) NeedLeaderElection() bool { return true }

func (s *Sweeper) OnAdd(obj any, _ bool) { s.bind(obj) }

func (s *Sweeper) OnUpdate(_, obj any) { s.bind(obj) }

// bind queues the pod's reservations for binding to its UID. Every
// replica's informer sees the event; only the leader drains the queue, and
// when it is full (not the leader) the periodic sweep binds what is dropped.
func (s *Sweeper) bind(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok || m.GetDeletionTimestamp() != nil {
		return
	}
	s.enqueue(m, false)
}

// OnDelete queues the deleted pod's reservations for release.
func (s *Sweeper) OnDelete(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if m, ok := obj.(metav1.Object); ok {
		s.enqueue(m, true)
	}
}

func (s *Sweeper) enqueue(m metav1.Object, gone bool) {
	for _, res := range strings.Split(m.GetAnnotations()[v1alpha1.AnnotationReservations], ",") {
		if res == "" {
			continue
		}
		select {
		case s.queue() <- sweepItem{res: res, namespace: m.GetNamespace(), uid: m.GetUID(), gone: gone}:
		default:
		}
	}
}

func (s *Sweeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-s.queue():
			if !it.gone {
				if err := s.Reserver.Bind(ctx, it.res, it.namespace, it.uid); err != nil {
					log.Error(err, "binding a blast-radius slot to its pod", "reservation", it.res)
				}
				continue
			}
			if err := s.Reserver.ReleaseFor(ctx, it.res, it.namespace, it.uid); err != nil {
				log.Error(err, "releasing a deleted pod's blast-radius slot", "reservation", it.res)
			}
		case now := <-t.C:
			if err := s.Reserver.Sweep(ctx, now); err != nil {
				log.Error(err, "sweeping blast-radius reservations")
			}
		}
	}
}
