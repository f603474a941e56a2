package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Blast radius: maxPods per group (namespace + groupBy label values) holds
// across webhook replicas because every injection first reserves a slot in a
// per-group Lease, and the write is resourceVersion-checked: two replicas
// racing for the last slot cannot both win. A sweeper (leader-elected)
// drops reservations whose pod is gone, so deleting a pod frees its slot.

// annotationReservations on a Lease: reservation id -> slot; annotationGroup:
// the group key, which starts with the namespace.
const (
	annotationReservations = "faultline.dev/reservations"
	annotationGroup        = "faultline.dev/group"
)

// reservationGrace keeps a reservation whose pod is not (yet) visible: the
// pod is created only after the webhook answers.
const reservationGrace = 2 * time.Minute

// LeaseReserver keeps reservations in Leases in Namespace.
type LeaseReserver struct {
	Client    client.Client
	Namespace string
}

// leaseName is stable per policy and group, and a valid object name.
func leaseName(policy, group string) string {
	h := sha256.Sum256([]byte(policy + "\x00" + group))
	return "faultline-br-" + hex.EncodeToString(h[:8])
}

// reservation ("lease/id") and how many slots are taken.
func (r *LeaseReserver) Reserve(ctx context.Context, policy, group, id string, max int) (string, int, error) {
	name := leaseName(policy, group)
	var taken int
	var reservation string
	err := retry.OnError(leaseBackoff, retriable, func() error {
		reservation, taken = "", 0
		var l coordinationv1.Lease
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &l)
		if apierrors.IsNotFound(err) {
			if max < 1 {
				return nil
			}
			l = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace,
				Labels:      map[string]string{"app.kubernetes.io/name": "faultline", "faultline.dev/policy": policy},
				Annotations: map[string]string{annotationGroup: group}}}
			setReservations(&l, map[string]slot{id: {At: time.Now().Unix()}})
			if err := r.Client.Create(ctx, &l); err != nil {
				return err
			}
			reservation, taken = name+"/"+id, 1
			return nil
		}
		if err != nil {
			return err
		}
		res := reservations(&l)
		if len(res) >= max {
			if err := r.dropDead(ctx, &l, res, time.Now()); err != nil {
				return err
			}
		}
		if len(res) >= max {
			taken = len(res)
			return nil
		}
		res[id] = slot{At: time.Now().Unix()}
		setReservations(&l, res)
		if err := r.Client.Update(ctx, &l); err != nil {
			return err
		}
		reservation, taken = name+"/"+id, len(res)
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("lease %s: %w", name, err)
	}
	return reservation, taken, nil
}

// leaseBackoff spreads replicas racing for one Lease over about a second,
// well inside an admission's timeout.
var leaseBackoff = wait.Backoff{Steps: 8, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5}

func retriable(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }

// inFlight is how long a reservation may wait for its pod: the webhook
// answers within its timeout (at most 30 s) and the pod is stored at once.
const inFlight = 30 * time.Second

// dropDead removes, from a full group's reservations, those whose pod is
// known dead by the API server itself, not by this replica's informer: a
// slot bound to a pod UID that no longer exists or is being deleted, and
// a slot no live pod claims once its admission can no longer be in flight.
// A ReplicaSet replaces a deleted pod within milliseconds, before any
// sweeper has run; the replacement must not find the group full of ghosts.
func (r *LeaseReserver) dropDead(ctx context.Context, l *coordinationv1.Lease, res map[string]slot, now time.Time) error {
	ns, _, _ := strings.Cut(l.Annotations[annotationGroup], ",")
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing pods of namespace %s: %w", ns, err)
	}
	uids, claimed := map[types.UID]bool{}, map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		uids[p.UID] = true
		for _, c := range strings.Split(p.Annotations[v1alpha1.AnnotationReservations], ",") {
			claimed[c] = true
		}
	}
	for id, s := range res {
		if (s.UID != "" && !uids[s.UID]) || (s.UID == "" && !claimed[l.Name+"/"+id] && now.Sub(time.Unix(s.At, 0)) > inFlight) {
			delete(res, id)
		}
	}
	return nil
}

// slot is one reservation: when it was taken and, once the leader has seen
// its pod, the pod's UID.
type slot struct {
	At  int64     `json:"at"`
	UID types.UID `json:"uid,omitempty"`
}

// UnmarshalJSON also reads the bare unix time earlier versions wrote.
func (s *slot) UnmarshalJSON(b []byte) error {
	var at int64
	if err := json.Unmarshal(b, &at); err == nil {
		*s = slot{At: at}
		return nil
	}
	type plain slot
	return json.Unmarshal(b, (*plain)(s))
}

func reservations(l *coordinationv1.Lease) map[string]slot {
	m := map[string]slot{}
	_ = json.Unmarshal([]byte(l.Annotations[annotationReservations]), &m)
	return m
}

func setReservations(l *coordinationv1.Lease, m map[string]slot) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annotationReservations] = mustJSON(m)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v) // maps of strings to plain structs cannot fail
	return string(b)
}

// GroupSize counts the pod's group with a metadata-only List: exact, but
// its cost grows with the namespace (GroupCounter is the flat-cost path).
func (r *LeaseReserver) GroupSize(ctx context.Context, pod *corev1.Pod, groupBy []string) (int, error) {
	sel := client.MatchingLabels{}
	for _, k := range groupBy {
		sel[k] = pod.Labels[k]
	}
	var l metav1.PartialObjectMetadataList
	l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, &l, client.InNamespace(pod.Namespace), sel); err != nil {
		return 0, fmt.Errorf("counting pods of group: %w", err)
	}
	n := 0
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

// reserveAll takes a slot in every matched Enforce policy with maxPods; if
// any group is full the decision is a refusal naming it. Slots taken before
