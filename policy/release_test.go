package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// A pod that gets no chaos holds no slot: not for the sweeper's minutes, in
// which a rollout's next pods would be told "blast radius full" (issue 12
// item 13). Slots are taken last (Reserve); a later full group gives back
// what earlier ones took.
func TestSlotsOfRefusedPodsAreReleasedAtOnce(t *testing.T) {
	capped := func(name string, max int) v1alpha1.ChaosPolicy {
		return policy(t, fmt.Sprintf(`
metadata: {name: %s}
spec:
  namespaceSelector: {matchLabels: {env: staging}}
  limits: {maxDelay: 200ms}
  blastRadius: {maxPods: %d, groupBy: [app]}
`, name, max))
	}
	decideWith := func(res memReserver, pols []v1alpha1.ChaosPolicy, ns map[string]string, id string) Decision {
		e := Engine{Limiter: &Policies{Source: StaticPolicies(pols), Now: func() time.Time { return wednesdayMorning }, Reserver: res}}
		p := pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"})
		p.Labels["app"] = "web"
		req := &Request{Pod: p, NamespaceLabels: merge(nsEnabled, ns), NamespaceKnown: true, ID: id}
		return e.Reserve(context.Background(), req, e.Decide(context.Background(), req))
	}
	held := func(res memReserver) int {
		n := 0
		for _, v := range res {
			n += v
		}
		return n
	}
	t.Run("a later policy being full gives back the slot an earlier one took", func(t *testing.T) {
		res := memReserver{"b-full/shop,app=web": 1}
		d := decideWith(res, []v1alpha1.ChaosPolicy{capped("a-roomy", 5), capped("b-full", 1)}, staging, "pod-1")
		if d.Inject {
			t.Fatal("injected past a full blast radius")
		}
		if res["a-roomy/shop,app=web"] != 0 {
			t.Errorf("a-roomy still holds %d slots for a pod without chaos", res["a-roomy/shop,app=web"])
		}
	})
	t.Run("a pod Pod Security refuses takes no slot, and the next pod gets it", func(t *testing.T) {
		res := memReserver{}
		baseline := merge(staging, map[string]string{LabelPSAEnforce: "baseline"})
		if d := decideWith(res, []v1alpha1.ChaosPolicy{capped("one", 1)}, baseline, "pod-1"); d.Inject {
			t.Fatal("network faults injected under Pod Security baseline")
		}
		if n := held(res); n != 0 {
			t.Fatalf("%d slots held for the refused pod", n)
		}
		if d := decideWith(res, []v1alpha1.ChaosPolicy{capped("one", 1)}, staging, "pod-2"); !d.Inject {
			t.Errorf("the next pod was refused: %s", d.Message())
		}
	})
}
