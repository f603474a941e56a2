package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// grantAll stands in for the Lease write, which is one API round trip
// whatever the pod count; the benchmark measures the decision around it.
type grantAll struct{}

func (grantAll) Reserve(_ context.Context, policy, group, id string, _ int) (string, int, error) {
	return policy + "/" + id, 1, nil
}

func (grantAll) Release(context.Context, string) error { return nil }

// BenchmarkDecision is a full policy decision (safety, parse, policies,
// group size for maxPercent, reservation) with 10, 1,000 and 10,000 pods
// tracked by the informer-fed counter, with and without the decision cache.
// Goal: the 10,000 figure at most 1.2x the 10 figure.
func BenchmarkDecision(b *testing.B) {
	pol := policy(b, `
metadata: {name: staging-net, uid: u1, generation: 1}
spec:
  namespaceSelector: {matchLabels: {env: staging}}
  limits: {maxDelay: 200ms, maxLoss: 5%}
  blastRadius: {maxPercent: 30%, groupBy: [app]}
  windows: [{days: [Mon, Tue, Wed, Thu, Fri], start: "09:00", end: "17:00", timeZone: Europe/Berlin}]
`)
	for _, cached := range []bool{false, true} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("cache=%v/pods=%d", cached, n), func(b *testing.B) {
				g := NewGroupCounter(nil, nil)
				for i := 0; i < n; i++ {
					g.OnAdd(podMeta("shop", fmt.Sprintf("p-%d", i), map[string]string{"app": fmt.Sprintf("app-%d", i%10)}), true)
				}
				p := &Policies{Source: StaticPolicies{pol}, Now: func() time.Time { return wednesdayMorning },
					Reserver: grantAll{}, Groups: g}
				if cached {
					p.Decisions = NewDecisionCache(1024)
				}
				e := Engine{Limiter: p, Specs: NewSpecCache(64)}
				req := &Request{Pod: pod("shop", map[string]string{"faultline.dev/inject": "true", "app": "app-3"},
					map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms, loss: 1%}]"}),
					NamespaceLabels: merge(nsEnabled, staging), NamespaceKnown: true, ID: "uid"}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if d := e.Reserve(context.Background(), req, e.Decide(context.Background(), req)); !d.Inject {
						b.Fatal(d.Message())
					}
				}
			})
		}
	}
}
