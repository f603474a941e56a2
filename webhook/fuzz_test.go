package webhook

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Whatever bytes arrive as the pod, the handler answers (no panic), always
// allows, and any patch it returns is a JSON patch that applies to the pod
// it was given. A permissive policy lets fuzzed pods reach the injector.
func FuzzHandle(f *testing.F) {
	for _, file := range []string{"testdata/pods/typical-web.yaml"} {
		if b, err := os.ReadFile(file); err == nil {
			if js, err := yaml.YAMLToJSON(b); err == nil {
				f.Add(js)
			}
		}
	}
	f.Add([]byte(`{"metadata":{"namespace":"shop","labels":{"faultline.dev/inject":"true"},"annotations":{"faultline.dev/faults":"network: [{delay: 10ms}]\nclock: {offset: 1m}"}},"spec":{"containers":[{"name":"app","image":"a","env":[{"name":"LD_PRELOAD","value":"x"}]}]}}`))
	f.Add([]byte(`{"metadata":{"annotations":null},"spec":{"containers":null,"initContainers":[]}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"metadata":{"namespace":"shop","labels":{"faultline.dev/inject":"true"},"annotations":{"faultline.dev/faults":"http: [{direction: inbound, port: 8080, abort: {grpc: {code: UNAVAILABLE}}}]"}},"spec":{"containers":[{"name":"app","image":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"faultline.dev/inject":"true"},"annotations":{"faultline.dev/faults":"dns: {failure: servfail, hosts: ['*']}"}},"spec":{"containers":[{"name":"faultline-agent"}]}}`))
	allow := v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "all", UID: "u", Generation: 1}, Spec: v1alpha1.ChaosPolicySpec{Limits: v1alpha1.Limits{
		MaxDelay: "10s", MaxJitter: "1s", MaxLoss: "100%", MinBandwidth: "1bit", Partition: true, Reset: true, MaxDNSPercent: "100%", MaxClockOffset: "1000h", MaxClockDrift: "100000ppm",
		HTTP: &v1alpha1.HTTPLimits{MaxDelay: "1m", MaxAbortPercent: "100%"}}}}
	h := testHandler(SidecarNative, prometheus.NewRegistry())
	h.Decider = &policy.Engine{Safety: policy.Safety{OwnNamespace: "faultline-system"},
		Limiter: &policy.Policies{Source: policy.StaticPolicies{allow}}, Specs: policy.NewSpecCache(64)}
	f.Fuzz(func(t *testing.T, pod []byte) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create, Namespace: "shop"}}
		req.Object.Raw = pod
		resp := h.Handle(context.Background(), req)
		if !resp.Allowed {
			t.Fatalf("denied: %+v", resp.Result)
		}
		if resp.Patch == nil {
			return
		}
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch without the JSONPatch type")
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("patch is not a JSON patch: %v\n%s", err, resp.Patch)
		}
		out, err := p.Apply(pod)
		if err != nil {
			t.Fatalf("patch does not apply to the pod it answers: %v\npod %s\npatch %s", err, pod, resp.Patch)
		}
		if !json.Valid(out) {
			t.Fatalf("patched pod is not JSON")
		}
	})
}
