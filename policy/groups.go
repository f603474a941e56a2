package policy

import (
	"context"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
)

// GroupCounter answers GroupSize from counts kept current by a metadata-only
// pod informer, so a decision costs the same with 10 or 10,000 pods. Counts
// are kept per groupBy signature (the list of label keys a policy groups
// by); a signature seen for the first time is counted with one pass over
// the pods, after that every pod event adjusts it in O(signatures).
//
// Until the informer has synced it asks Fallback (a List), because a
// half-filled count would let the first pods through a maxPercent cap.
type GroupCounter struct {
	Fallback GroupSizer
	// Synced reports whether the informer has delivered its initial list.
	Synced func() bool

	mu    sync.Mutex
	pods  map[types.NamespacedName]map[string]string // live pods' labels
	bySig map[string]map[string]int                  // signature -> group key -> count
}

// NewGroupCounter is a counter to be fed by an informer (see Handler).
func NewGroupCounter(fallback GroupSizer, synced func() bool) *GroupCounter {
	return &GroupCounter{Fallback: fallback, Synced: synced,
		pods: map[types.NamespacedName]map[string]string{}, bySig: map[string]map[string]int{}}
}

var _ toolscache.ResourceEventHandler = (*GroupCounter)(nil)

func (g *GroupCounter) GroupSize(ctx context.Context, pod *corev1.Pod, groupBy []string) (int, error) {
	if g.Synced != nil && !g.Synced() {
		return g.Fallback.GroupSize(ctx, pod, groupBy)
	}
	sig := strings.Join(groupBy, "\x00")
	g.mu.Lock()
	defer g.mu.Unlock()
	counts, ok := g.bySig[sig]
	if !ok {
		counts = map[string]int{}
		for k, l := range g.pods {
			counts[GroupKey(k.Namespace, l, groupBy)]++
		}
		g.bySig[sig] = counts
	}
	n := counts[GroupKey(pod.Namespace, pod.Labels, groupBy)]
	// The pod under admission is not yet in the informer, but a retried
	// admission of an existing name would be: never count it twice.
	if pod.Name != "" {
		if _, seen := g.pods[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}]; seen && n > 0 {
			n--
		}
	}
	return n, nil
}

// Tracked is how many live pods the counter knows (for metrics and tests).
func (g *GroupCounter) Tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pods)
}

func (g *GroupCounter) OnAdd(obj any, _ bool) { g.set(obj) }

func (g *GroupCounter) OnUpdate(_, obj any) { g.set(obj) }

func (g *GroupCounter) OnDelete(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if m := metaOf(obj); m != nil {
		g.mu.Lock()
		g.forget(types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()})
		g.mu.Unlock()
	}
}

// set records a pod's current labels; a terminating pod no longer counts.
func (g *GroupCounter) set(obj any) {
	m := metaOf(obj)
	if m == nil {
		return
	}
	key := types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forget(key)
	if m.GetDeletionTimestamp() != nil {
		return
	}
	l := m.GetLabels()
	g.pods[key] = l
	for sig, counts := range g.bySig {
		counts[GroupKey(key.Namespace, l, splitSig(sig))]++
	}
}

func (g *GroupCounter) forget(key types.NamespacedName) {
	l, ok := g.pods[key]
	if !ok {
		return
	}
	delete(g.pods, key)
	for sig, counts := range g.bySig {
		gk := GroupKey(key.Namespace, l, splitSig(sig))
		if counts[gk]--; counts[gk] <= 0 {
			delete(counts, gk)
		}
	}
}

func splitSig(sig string) []string {
	if sig == "" {
		return nil
	}
	return strings.Split(sig, "\x00")
}

func metaOf(obj any) metav1.Object {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil
	}
	return m
}
