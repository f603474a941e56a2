package policy

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Blast radius: maxPods and maxPercent per group (namespace + groupBy label
// values) are slots a Reserver holds for every webhook replica (Leases, in
// policy/controllers). Slots are taken last, by Engine.Reserve, once the
// webhook knows the pod gets its patch: reservations travel one way, from
// here into the pod's annotation, and nothing after them can fail and
// leave one held.

// CodeBlastRadius: the group already has as many chaotic pods as allowed.
const CodeBlastRadius Code = "blast-radius"

// GroupKey is the namespace plus the groupBy label values.
func GroupKey(namespace string, labels map[string]string, groupBy []string) string {
	parts := []string{namespace}
	for _, k := range groupBy {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// OwnerReplicas tells how many pods a pod's controller (ReplicaSet,
// StatefulSet) wants, from its spec.replicas.
type OwnerReplicas interface {
	DesiredReplicas(ctx context.Context, pod *corev1.Pod) (int, bool)
}

// GroupSizer counts the live pods of a pod's blast-radius group (same
// namespace and groupBy label values), not counting the pod itself.
type GroupSizer interface {
	GroupSize(ctx context.Context, pod *corev1.Pod, groupBy []string) (int, error)
}

// Reserver holds blast-radius slots shared by every webhook replica.
type Reserver interface {
	// Reserve takes a slot for id in (policy, group) unless max are taken;
	// it returns the reservation ("" when full) and how many are taken.
	Reserve(ctx context.Context, policy, group, id string, max int) (string, int, error)
	// Release drops a reservation ("lease/id") at once.
	Release(ctx context.Context, reservation string) error
}

// Reserve takes a slot for id unless the group is full; it returns the
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
		group := GroupKey(req.Pod.Namespace, req.Pod.Labels, br.GroupBy)
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
			// Counting the pod being created, and the pods its controller
			// is about to create: a ReplicaSet creates its pods in
			// parallel batches, and the first ones would otherwise see a
			// group too small for any slot.
			size := total + 1
			if p.Owners != nil {
				if want, ok := p.Owners.DesiredReplicas(ctx, req.Pod); ok && want > size {
					size = want
				}
			}
			// Rounded down: the cap is never exceeded.
			if byPct := int(math.Floor(frac * float64(size))); byPct < limit {
				limit, what = byPct, fmt.Sprintf("maxPercent %s of %d pods", br.MaxPercent, size)
			}
		}
		res, n, err := p.Reserver.Reserve(ctx, pol.Name, group, req.ID, limit)
		if err != nil {
			p.release(ctx, taken)
			return nil, nil, err
		}
		if res == "" {
			// The slots taken under the policies before this one would
			// otherwise stay held until the sweeper, for a pod without chaos.
			p.release(ctx, taken)
			return nil, &Reason{Code: CodeBlastRadius, Policy: pol.Name, Notify: true,
				Message: fmt.Sprintf("blast radius full: %d with chaos, %s, in group %s", n, what, group)}, nil
		}
		taken = append(taken, res)
	}
	sort.Strings(taken)
	return taken, nil, nil
}

// release drops reservations at once, for a pod that will not get chaos
// after all (a later policy's group is full): left to the sweeper they
// would block a rollout's next pods for minutes with a false "blast radius
// full". Best effort: the sweeper frees what fails here.
func (p *Policies) release(ctx context.Context, reservations []string) {
	if p == nil || p.Reserver == nil {
		return
	}
	for _, r := range reservations {
		if err := p.Reserver.Release(ctx, r); err != nil {
			logf.FromContext(ctx).Error(err, "releasing a blast-radius slot; the sweeper will", "reservation", r)
		}
	}
}
