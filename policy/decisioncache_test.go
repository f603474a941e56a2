package policy

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The cache must never answer with a verdict its inputs no longer give.
func TestDecisionCacheFollowsItsInputs(t *testing.T) {
	cache := NewDecisionCache(64)
	if err := cache.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	pol := policy(t, stagingNet)
	pol.UID, pol.Generation = "uid-1", 1
	now := wednesdayMorning
	p := &Policies{Source: StaticPolicies{pol}, Now: func() time.Time { return now }, Decisions: cache}
	e := Engine{Limiter: p}
	run := func(ns map[string]string, spec string) Decision {
		return e.Decide(context.Background(), &Request{
			Pod:             pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: spec}),
			NamespaceLabels: merge(nsEnabled, ns), NamespaceKnown: true,
		})
	}
	steps := []struct {
		name   string
		change func()
		ns     map[string]string
		spec   string
		inject bool
		hit    bool
	}{
		{name: "a first pod is evaluated", ns: staging, spec: "network: [{delay: 100ms}]", inject: true},
		{name: "its twin is served from the cache", ns: staging, spec: "network: [{delay: 100ms}]", inject: true, hit: true},
		{name: "a stronger spec is evaluated anew and refused", ns: staging, spec: "network: [{delay: 2s}]"},
		{name: "another namespace's labels are evaluated anew", ns: map[string]string{"env": "prod"}, spec: "network: [{delay: 100ms}]"},
		{name: "pausing the policy (a new generation) is seen at once", ns: staging, spec: "network: [{delay: 100ms}]",
			change: func() {
				pol.Spec.Paused, pol.Generation = true, 2
				p.Source = StaticPolicies{pol}
			}},
		{name: "the next minute is evaluated anew (windows)", ns: staging, spec: "network: [{delay: 100ms}]",
			change: func() { now = now.Add(time.Minute) }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.change != nil {
				s.change()
			}
			hits := testutil.ToFloat64(cache.lru.hits)
			d := run(s.ns, s.spec)
			if d.Inject != s.inject {
				t.Fatalf("inject=%v, want %v (%s)", d.Inject, s.inject, d.Message())
			}
			if hit := testutil.ToFloat64(cache.lru.hits) > hits; hit != s.hit {
				t.Fatalf("cache hit=%v, want %v", hit, s.hit)
			}
		})
	}
}

// A cached verdict's reasons are copies: a caller changing them must not
// change the next answer.
func TestDecisionCacheHandsOutCopies(t *testing.T) {
	pol := policy(t, stagingNet)
	pol.UID, pol.Generation = "uid-1", 1
	p := &Policies{Source: StaticPolicies{pol}, Now: func() time.Time { return wednesdayMorning }, Decisions: NewDecisionCache(8)}
	req := &Request{Pod: pod("shop", optedIn, nil), NamespaceLabels: merge(nsEnabled, staging), NamespaceKnown: true}
	spec, _ := v1alpha1.ParseFaultSpec("network: [{delay: 2s}]", nil)
	first := p.Limit(context.Background(), req, spec)
	first.Reasons[0].Message = "tampered"
	if again := p.Limit(context.Background(), req, spec); again.Reasons[0].Message == "tampered" {
		t.Fatal("the cache handed out its own reasons")
	}
}

// With several policies the informer hands them out in any order; the same
// policies must hit the cache whatever the order (issue 12 item 14: the key
// hashed them in list order, so with two or more it mostly missed).
func TestDecisionCacheHitsWhateverThePolicyOrder(t *testing.T) {
	cache := NewDecisionCache(64)
	if err := cache.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	var pols []v1alpha1.ChaosPolicy
	for i, name := range []string{"alpha", "bravo", "charlie"} {
		pol := policy(t, stagingNet)
		pol.Name, pol.UID, pol.Generation = name, types.UID("uid-"+name), int64(i+1)
		pols = append(pols, pol)
	}
	orders := [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}}
	var first string
	for i, o := range orders {
		list := StaticPolicies{pols[o[0]], pols[o[1]], pols[o[2]]}
		p := &Policies{Source: list, Now: func() time.Time { return wednesdayMorning }, Decisions: cache}
		hits := testutil.ToFloat64(cache.lru.hits)
		e := Engine{Limiter: p}
		d := e.Decide(context.Background(), &Request{
			Pod:             pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}),
			NamespaceLabels: merge(nsEnabled, staging), NamespaceKnown: true,
		})
		if i == 0 {
			first = d.Message()
			continue
		}
		if testutil.ToFloat64(cache.lru.hits) == hits {
			t.Errorf("policies in order %v missed the cache", o)
		}
		if d.Message() != first {
			t.Errorf("order %v decided %q, the first order %q", o, d.Message(), first)
		}
	}
}
