package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

const delaySpec = "network: [{delay: 100ms}]"

func pod(ns string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

var (
	optedIn   = map[string]string{v1alpha1.LabelPodInject: "true"}
	nsEnabled = map[string]string{v1alpha1.LabelNamespaceInjection: "enabled"}
	faults    = map[string]string{v1alpha1.AnnotationFaults: delaySpec}
)

func TestEngineDecides(t *testing.T) {
	hostNet := pod("shop", optedIn, faults)
	hostNet.Spec.HostNetwork = true
	cases := []struct {
		name     string
		req      Request
		limiter  Limiter
		inject   bool
		code     Code
		notify   bool
		contains string
	}{
		{name: "an opted-in pod in an enabled namespace is injected",
			req: Request{Pod: pod("shop", optedIn, faults), NamespaceLabels: nsEnabled, NamespaceKnown: true}, inject: true, code: CodeInjected},
		{name: "a pod without the inject label is not a candidate",
			req: Request{Pod: pod("shop", nil, faults), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeNotOptedIn, contains: "faultline.dev/inject=true"},
		{name: "an opted-in pod in a namespace that did not opt in is refused with a notice",
			req: Request{Pod: pod("shop", optedIn, faults), NamespaceKnown: true}, code: CodeNotOptedIn, notify: true, contains: "namespace shop is not opted in"},
		{name: "every pod of an always-on namespace is a candidate",
			req: Request{Pod: pod("staging", nil, faults), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "always"}, NamespaceKnown: true}, inject: true, code: CodeInjected},
		{name: "a pod can opt out of an always-on namespace",
			req: Request{Pod: pod("staging", map[string]string{v1alpha1.LabelPodInject: "false"}, faults), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "always"}, NamespaceKnown: true}, code: CodeOptedOut},
		{name: "kube-system is never injected, even when labelled",
			req: Request{Pod: pod("kube-system", optedIn, faults), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeProtectedNamespace, contains: "kube-system is protected"},
		{name: "faultline's own namespace is never injected",
			req: Request{Pod: pod("faultline-system", optedIn, faults), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeProtectedNamespace},
		{name: "a hostNetwork pod is never injected",
			req: Request{Pod: hostNet, NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeHostNetwork, notify: true, contains: "node's network"},
		{name: "an already injected pod is left alone",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: delaySpec, v1alpha1.AnnotationStatus: "{}"}), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeAlreadyInjected},
		{name: "a pod without a fault annotation gets nothing",
			req: Request{Pod: pod("shop", optedIn, nil), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeNoFaults, notify: true},
		{name: "a bad spec is admitted without injection and says why",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 5}]"}), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeInvalidSpec, notify: true, contains: "metadata.annotations[faultline.dev/faults].network[0].delay"},
		{name: "both a spec and a profile is ambiguous",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: delaySpec, v1alpha1.AnnotationProfile: "p"}), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeInvalidSpec, notify: true, contains: "use one"},
		{name: "a profile reference waits for the policy engine",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationProfile: "slow-db"}), NamespaceLabels: nsEnabled, NamespaceKnown: true}, code: CodeProfileUnavailable, notify: true, contains: "slow-db"},
		{name: "network faults are refused where Pod Security enforces baseline",
			req: Request{Pod: pod("shop", optedIn, faults), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "enabled", LabelPSAEnforce: "baseline"}, NamespaceKnown: true}, code: CodePodSecurity, notify: true, contains: `enforces Pod Security "baseline"`},
		{name: "HTTP faults are refused where Pod Security enforces restricted: their redirects need NET_ADMIN",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: "http: [{direction: inbound, port: 8080, abort: {status: 503}}]"}), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "enabled", LabelPSAEnforce: "restricted"}, NamespaceKnown: true}, code: CodePodSecurity, notify: true, contains: `enforces Pod Security "restricted"`},
		{name: "clock faults are fine where Pod Security enforces restricted",
			req: Request{Pod: pod("shop", optedIn, map[string]string{v1alpha1.AnnotationFaults: "clock: {offset: 5m}"}), NamespaceLabels: map[string]string{v1alpha1.LabelNamespaceInjection: "enabled", LabelPSAEnforce: "restricted"}, NamespaceKnown: true}, inject: true, code: CodeInjected},
		{name: "offline, the pod label alone makes a candidate",
			req: Request{Pod: pod("shop", optedIn, faults)}, inject: true, code: CodeInjected},
		{name: "with no policy nothing is injected",
			req: Request{Pod: pod("shop", optedIn, faults), NamespaceLabels: nsEnabled, NamespaceKnown: true}, limiter: NoPolicy{Why: "no ChaosPolicy"}, code: CodeNoPolicy, notify: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lim := c.limiter
			if lim == nil {
				lim = AdmitRequested{Why: "test"}
			}
			e := Engine{Safety: Safety{OwnNamespace: "faultline-system"}, Limiter: lim}
			d := e.Decide(context.Background(), &c.req)
			if d.Inject != c.inject || d.Code() != c.code {
				t.Fatalf("got inject=%v code=%s (%s), want inject=%v code=%s", d.Inject, d.Code(), d.Message(), c.inject, c.code)
			}
			if d.Inject != (d.Spec != nil) {
				t.Errorf("inject=%v but spec=%v", d.Inject, d.Spec)
			}
			if got := len(d.Warnings("")) > 0; got != c.notify {
				t.Errorf("warnings %q, want notify=%v", d.Warnings(""), c.notify)
			}
			if !strings.Contains(d.Message(), c.contains) {
				t.Errorf("message %q does not contain %q", d.Message(), c.contains)
			}
		})
	}
}

func TestSpecCacheCountsHitsAndMisses(t *testing.T) {
	c := NewSpecCache(8)
	reg := prometheus.NewRegistry()
	if err := c.Register(reg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c.Parse(delaySpec)
	}
	c.Parse("clock: {offset: 1s}")
	if h, m := testutil.ToFloat64(c.lru.hits), testutil.ToFloat64(c.lru.misses); h != 2 || m != 2 {
		t.Fatalf("hits=%v misses=%v, want 2 and 2", h, m)
	}
}
