package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

func podMeta(ns, name string, labels map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
}

// Every informer event moves the counts the way a fresh List would.
func TestGroupCounterFollowsPodEvents(t *testing.T) {
	g := NewGroupCounter(nil, nil)
	web := map[string]string{"app": "web"}
	admitted := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: web}}
	size := func(groupBy ...string) int {
		n, err := g.GroupSize(context.Background(), admitted, groupBy)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	g.OnAdd(podMeta("shop", "web-1", web), true)
	g.OnAdd(podMeta("shop", "web-2", web), true)
	g.OnAdd(podMeta("shop", "db-1", map[string]string{"app": "db"}), true)
	g.OnAdd(podMeta("other", "web-1", web), true)
	steps := []struct {
		name          string
		event         func()
		byApp, byNone int
	}{
		{name: "pods listed before the first question are counted", byApp: 2, byNone: 3},
		{name: "a new pod of the group adds one", event: func() { g.OnAdd(podMeta("shop", "web-3", web), false) }, byApp: 3, byNone: 4},
		{name: "a pod relabelled out of the group leaves it", event: func() {
			g.OnUpdate(podMeta("shop", "web-3", web), podMeta("shop", "web-3", map[string]string{"app": "canary"}))
		}, byApp: 2, byNone: 4},
		{name: "a terminating pod no longer counts", event: func() {
			p := podMeta("shop", "web-2", web)
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			g.OnUpdate(podMeta("shop", "web-2", web), p)
		}, byApp: 1, byNone: 3},
		{name: "a delete seen only as a tombstone is still a delete", event: func() {
			g.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "shop/web-1", Obj: podMeta("shop", "web-1", web)})
		}, byApp: 0, byNone: 2},
		{name: "deleting a pod twice counts once", event: func() { g.OnDelete(podMeta("shop", "web-1", web)) }, byApp: 0, byNone: 2},
		{name: "an object that is not a pod is ignored", event: func() { g.OnAdd("garbage", false) }, byApp: 0, byNone: 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.event != nil {
				s.event()
			}
			if got := size("app"); got != s.byApp {
				t.Errorf("group by app: %d, want %d", got, s.byApp)
			}
			if got := size(); got != s.byNone {
				t.Errorf("group by namespace: %d, want %d", got, s.byNone)
			}
		})
	}
	t.Run("a retried admission of a pod already seen does not count itself", func(t *testing.T) {
		g.OnAdd(podMeta("shop", "web-9", web), false)
		retried := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-9", Labels: web}}
		if n, _ := g.GroupSize(context.Background(), retried, []string{"app"}); n != 0 {
			t.Fatalf("%d, want 0", n)
		}
	})
}

// memReserver keeps slots in memory: the arithmetic of maxPercent without
// an API server (the Lease path is tested against one in webhook/).
type memReserver map[string]int

func (m memReserver) Reserve(_ context.Context, policy, group, id string, max int) (string, int, error) {
	k := policy + "/" + group
	if m[k] >= max {
		return "", m[k], nil
	}
	m[k]++
	return k + "/" + id, m[k], nil
}

func (m memReserver) Release(_ context.Context, reservation string) error {
	k := reservation[:strings.LastIndex(reservation, "/")]
	if m[k] > 0 {
		m[k]--
	}
	return nil
}

type desired int

func (d desired) DesiredReplicas(context.Context, *corev1.Pod) (int, bool) { return int(d), d > 0 }

// A ReplicaSet creates its pods in parallel batches; counting its desired
// replicas lets a 10-pod burst under 30% end with exactly 3 with chaos.
func TestMaxPercentCountsTheControllersDesiredReplicas(t *testing.T) {
	pol := policy(t, `
metadata: {name: thirty}
spec:
  limits: {maxDelay: 1s}
  blastRadius: {maxPercent: 30%, groupBy: [app]}
`)
	for _, c := range []struct {
		name   string
		owners OwnerReplicas
		want   int
	}{
		{name: "without the controller's replicas a burst ends under the cap", want: 2},
		{name: "with the controller's replicas a burst ends exactly at the cap", owners: desired(10), want: 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewGroupCounter(nil, nil)
			p := &Policies{Source: StaticPolicies{pol}, Reserver: memReserver{}, Groups: g, Owners: c.owners}
			e := Engine{Limiter: p}
			n := 0
			// Batches of 1, 2, 4 and 3 as the ReplicaSet controller's
			// slow start: pods of a batch do not see each other.
			created := 0
			for _, batch := range []int{1, 2, 4, 3} {
				var names []string
				for i := 0; i < batch; i++ {
					name := fmt.Sprintf("web-%d", created)
					created++
					pod := pod("shop", map[string]string{"faultline.dev/inject": "true", "app": "web"},
						map[string]string{"faultline.dev/faults": "network: [{delay: 100ms}]"})
					pod.Name = name
					req := &Request{Pod: pod, NamespaceLabels: nsEnabled, NamespaceKnown: true, ID: name}
					if d := e.Reserve(context.Background(), req, e.Decide(context.Background(), req)); d.Inject {
						n++
					}
					names = append(names, name)
				}
				for _, name := range names {
					g.OnAdd(podMeta("shop", name, map[string]string{"app": "web"}), false)
				}
			}
			if n != c.want {
				t.Fatalf("%d of 10 injected, want %d", n, c.want)
			}
		})
	}
}
