package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Blast radius: maxPods per group (namespace + groupBy label values) holds
// across webhook replicas because every injection first reserves a slot in a
// per-group Lease, and the write is resourceVersion-checked: two replicas
// racing for the last slot cannot both win. A sweeper (leader-elected)
// drops reservations whose pod is gone, so deleting a pod frees its slot.

// CodeBlastRadius: the group already has as many chaotic pods as allowed.
const CodeBlastRadius Code = "blast-radius"

// AnnotationReservations on a Lease: reservation id -> unix time reserved.
const annotationReservations = "faultline.dev/reservations"

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

// groupKeyOf is the namespace plus the groupBy label values.
func groupKeyOf(namespace string, labels map[string]string, groupBy []string) string {
	parts := []string{namespace}
	for _, k := range groupBy {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// Reserver holds blast-radius slots shared by every webhook replica.
type Reserver interface {
	// Reserve takes a slot for id in (policy, group) unless max are taken;
	// it returns the reservation ("" when full) and how many are taken.
	Reserve(ctx context.Context, policy, group, id string, max int) (string, int, error)
}

// Reserve takes a slot for id unless the group is full; it returns the
// reservation ("lease/id") and how many slots are taken.
func (r *LeaseReserver) Reserve(ctx context.Context, policy, group, id string, max int) (string, int, error) {
	name := leaseName(policy, group)
	for attempt := 0; attempt < 20; attempt++ {
		var l coordinationv1.Lease
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &l)
		if apierrors.IsNotFound(err) {
			if max < 1 {
				return "", 0, nil
			}
			l = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace,
				Labels:      map[string]string{"app.kubernetes.io/name": "faultline", "faultline.dev/policy": policy},
				Annotations: map[string]string{"faultline.dev/group": group, annotationReservations: mustJSON(map[string]int64{id: time.Now().Unix()})}}}
			if err := r.Client.Create(ctx, &l); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				return "", 0, fmt.Errorf("creating lease %s: %w", name, err)
			}
			return name + "/" + id, 1, nil
		}
		if err != nil {
			return "", 0, fmt.Errorf("reading lease %s: %w", name, err)
		}
		res := reservations(&l)
		if len(res) >= max {
			return "", len(res), nil
		}
		res[id] = time.Now().Unix()
		setReservations(&l, res)
		if err := r.Client.Update(ctx, &l); apierrors.IsConflict(err) {
			continue // another replica got there first: look again
		} else if err != nil {
			return "", 0, fmt.Errorf("updating lease %s: %w", name, err)
		}
		return name + "/" + id, len(res), nil
	}
	return "", 0, fmt.Errorf("lease %s: too much contention", name)
}

func reservations(l *coordinationv1.Lease) map[string]int64 {
	m := map[string]int64{}
	_ = json.Unmarshal([]byte(l.Annotations[annotationReservations]), &m)
	return m
}

func setReservations(l *coordinationv1.Lease, m map[string]int64) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annotationReservations] = mustJSON(m)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v) // maps of strings to ints cannot fail
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

// Sweeper runs Sweep every Interval on the leader (a manager.Runnable).
type Sweeper struct {
	Reserver *LeaseReserver
	Interval time.Duration
}

func (s *Sweeper) NeedLeaderElection() bool { return true }

func (s *Sweeper) Start(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := s.Reserver.Sweep(ctx, now); err != nil {
				logf.FromContext(ctx).Error(err, "sweeping blast-radius reservations")
			}
		}
	}
}

// reserveAll takes a slot in every matched Enforce policy with maxPods; if
// any group is full the decision is a refusal naming it. Slots taken before
// a refusal are left to the sweeper (they expire after the grace period).
func (p *Policies) reserveAll(ctx context.Context, req *Request, matched []*v1alpha1.ChaosPolicy) ([]string, *Reason, error) {
	var taken []string
	for _, pol := range matched {
		br := pol.Spec.BlastRadius
		if br == nil || (br.MaxPods == nil && br.MaxPercent == "") || pol.Spec.Mode == v1alpha1.ModeAudit {
			continue
		}
		if p.Reserver == nil || req.DryRun {
			continue // offline or dry run: no shared state to reserve in
		}
		group := groupKeyOf(req.Pod.Namespace, req.Pod.Labels, br.GroupBy)
		limit, what := math.MaxInt, ""
		if br.MaxPods != nil {
			limit, what = int(*br.MaxPods), fmt.Sprintf("maxPods %d", *br.MaxPods)
		}
		if br.MaxPercent != "" {
			frac, err := v1alpha1.ParsePercent(br.MaxPercent)
			if err != nil {
				return nil, nil, fmt.Errorf("policy %s: blastRadius.maxPercent: %w", pol.Name, err)
			}
			if p.Groups == nil {
				return nil, nil, fmt.Errorf("policy %s: blastRadius.maxPercent needs group sizes and none are available", pol.Name)
			}
			total, err := p.Groups.GroupSize(ctx, req.Pod, br.GroupBy)
			if err != nil {
				return nil, nil, err
			}
			// Rounded down, counting the pod being created: the cap is
			// never exceeded, at the price of the first pods of a group.
			if byPct := int(math.Floor(frac * float64(total+1))); byPct < limit {
				limit, what = byPct, fmt.Sprintf("maxPercent %s of %d pods", br.MaxPercent, total+1)
			}
		}
		res, n, err := p.Reserver.Reserve(ctx, pol.Name, group, req.ID, limit)
		if err != nil {
			return nil, nil, err
		}
		if res == "" {
			return nil, &Reason{Code: CodeBlastRadius, Policy: pol.Name, Notify: true,
				Message: fmt.Sprintf("blast radius full: %d with chaos, %s, in group %s", n, what, group)}, nil
		}
		taken = append(taken, res)
	}
	sort.Strings(taken)
	return taken, nil, nil
}
