package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Sweep drops reservations older than the grace period whose pod no longer
// exists. It runs on the leader.
func (r *LeaseReserver) Sweep(ctx context.Context, now time.Time) error {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods); err != nil {
		return err
	}
	live := map[string]bool{}
	for _, p := range pods.Items {
		for _, res := range strings.Split(p.Annotations[v1alpha1.AnnotationReservations], ",") {
			if res != "" && p.DeletionTimestamp == nil {
				live[res] = true
			}
		}
	}
	var leases coordinationv1.LeaseList
	if err := r.Client.List(ctx, &leases, client.InNamespace(r.Namespace), client.MatchingLabels{"app.kubernetes.io/name": "faultline"}); err != nil {
		return err
	}
	for i := range leases.Items {
		l := &leases.Items[i]
		res := reservations(l)
		changed := false
		for id, at := range res {
			if !live[l.Name+"/"+id] && now.Sub(time.Unix(at, 0)) > reservationGrace {
				delete(res, id)
				changed = true
			}
		}
		if !changed {
			continue
		}
		setReservations(l, res)
		if err := r.Client.Update(ctx, l); err != nil && !apierrors.IsConflict(err) {
			return err
		} // a conflict is retried on the next sweep
	}
	return nil
}

// Release drops one reservation ("lease/id") at once.
func (r *LeaseReserver) Release(ctx context.Context, reservation string) error {
	name, id, ok := strings.Cut(reservation, "/")
	if !ok {
		return fmt.Errorf("reservation %q: want LEASE/ID", reservation)
	}
	for attempt := 0; attempt < 20; attempt++ {
		var l coordinationv1.Lease
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &l); apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		res := reservations(&l)
		if _, held := res[id]; !held {
			return nil
		}
		delete(res, id)
		setReservations(&l, res)
		if err := r.Client.Update(ctx, &l); !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("lease %s: too much contention", name)
}

// Sweeper frees blast-radius slots on the leader: at once when it sees a
// pod deleted (its reservations are in its annotation), and by a full Sweep
// every Interval for whatever an event missed (a restart, a pod that was
// never created). It is a manager.Runnable and, fed by the pod metadata
// informer, a ResourceEventHandler.
type Sweeper struct {
	Reserver *LeaseReserver
	Interval time.Duration

	once  sync.Once
	freed chan string
	mu    sync.Mutex
	gone  map[string]time.Time // reservations of deleted pods, recently
}

func (s *Sweeper) queue() chan string {
	s.once.Do(func() { s.freed = make(chan string, 1024) })
	return s.freed
}

func (s *Sweeper) NeedLeaderElection() bool { return true }

func (s *Sweeper) OnAdd(any, bool) {}

func (s *Sweeper) OnUpdate(_, _ any) {}

// OnDelete queues the deleted pod's reservations. Every replica's informer
// sees the event; only the leader drains the queue, and when it is full
// (not the leader) the periodic sweep covers what is dropped.
func (s *Sweeper) OnDelete(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m := metaOf(obj)
	if m == nil {
		return
	}
	now := time.Now()
	for _, res := range strings.Split(m.GetAnnotations()[v1alpha1.AnnotationReservations], ",") {
		if res == "" {
			continue
		}
		s.mu.Lock()
		if s.gone == nil {
			s.gone = map[string]time.Time{}
		}
		s.gone[res] = now
		for r, at := range s.gone {
			if now.Sub(at) > reservationGrace {
				delete(s.gone, r)
			}
		}
		s.mu.Unlock()
		select {
		case s.queue() <- res:
		default:
		}
	}
}

// Gone says whether res belonged to a pod this replica saw deleted. A
// ReplicaSet replaces a deleted pod within milliseconds, often before the
// leader has released the slot: the replacement's admission may then drop
// the slot itself (LeaseReserver.Gone).
func (s *Sweeper) Gone(res string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.gone[res]
	return ok
}

func (s *Sweeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case res := <-s.queue():
			if err := s.Reserver.Release(ctx, res); err != nil {
				log.Error(err, "releasing a deleted pod's blast-radius slot", "reservation", res)
			}
		case now := <-t.C:
			if err := s.Reserver.Sweep(ctx, now); err != nil {
				log.Error(err, "sweeping blast-radius reservations")
			}
		}
	}
}
