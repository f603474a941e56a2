package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

// reviewJSON wraps a pod in an AdmissionReview as the API server sends it.
func reviewJSON(b *testing.B, pod []byte) []byte {
	raw, err := yaml.YAMLToJSON(pod)
	if err != nil {
		b.Fatal(err)
	}
	rev := admissionv1.AdmissionReview{
		Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create, Namespace: "shop",
			Object: runtime.RawExtension{Raw: raw}},
	}
	js, _ := json.Marshal(rev)
	return js
}

// largePod is ~60 KB: many containers with long env lists, as in big
// monoliths or generated manifests.
func largePod() []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Pod
metadata:
  name: big
  namespace: shop
  labels: {faultline.dev/inject: "true"}
  annotations:
    faultline.dev/faults: "network: [{delay: 100ms, jitter: 10ms}]\nclock: {offset: 5m}"
spec:
  containers:
`)
	for c := 0; len(b.String()) < 60_000; c++ {
		fmt.Fprintf(&b, "  - name: c%d\n    image: registry.example/app:%d\n    ports: [{containerPort: %d}]\n    readinessProbe: {tcpSocket: {port: %d}}\n    env:\n", c, c, 8000+c, 8000+c)
		for e := 0; e < 40; e++ {
			fmt.Fprintf(&b, "    - {name: SETTING_%d_%d, value: \"some-moderately-long-configuration-value-%d\"}\n", c, e, e)
		}
	}
	return []byte(b.String())
}

// BenchmarkAdmission compares the whole injector path (decode the review,
// decide, build the patch, encode the response) with a baseline that only
// decodes the review and the pod and encodes an allowed response.
func BenchmarkAdmission(b *testing.B) {
	typical, err := os.ReadFile("testdata/pods/typical-web.yaml")
	if err != nil {
		b.Fatal(err)
	}
	pods := []struct {
		name string
		pod  []byte
	}{{"typical", typical}, {"large", largePod()}}
	h := testHandler(SidecarNative, nil)
	// Distinct specs, more than the caches hold, so every admission parses
	// and renders from scratch: the cost of a rollout's first pod.
	var cold [][]byte
	for i := 0; i < 2048; i++ {
		cold = append(cold, reviewJSON(b, []byte(strings.Replace(string(typical), "delay: 100ms", fmt.Sprintf("delay: %dms", i+100), 1))))
	}
	b.Run("typical-uncached/injector", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			roundTrip(b, cold[i%len(cold)], h.Handle)
		}
	})
	// The handler alone, on a decoded AdmissionRequest: what the webhook adds
	// to a server that already speaks AdmissionReview.
	b.Run("typical/handler-only", func(b *testing.B) {
		var rev admissionv1.AdmissionReview
		if err := json.Unmarshal(reviewJSON(b, typical), &rev); err != nil {
			b.Fatal(err)
		}
		req := admission.Request{AdmissionRequest: *rev.Request}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if resp := h.Handle(context.Background(), req); len(resp.Patch) == 0 {
				b.Fatal("not injected")
			}
		}
	})
	for _, p := range pods {
		body := reviewJSON(b, p.pod)
		podBytes := len(body)
		b.Run(p.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(podBytes))
			for i := 0; i < b.N; i++ {
				roundTrip(b, body, decodeOnly)
			}
		})
		b.Run(p.name+"/injector", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(podBytes))
			for i := 0; i < b.N; i++ {
				if resp := roundTrip(b, body, h.Handle); len(resp.Patch) == 0 {
					b.Fatalf("not injected: %s", resp.Result.Message)
				}
			}
		})
	}
}

// decodeOnly is the baseline handler: decode the pod, allow it.
func decodeOnly(_ context.Context, req admission.Request) admission.Response {
	if _, err := decodePod(req.Object.Raw); err != nil {
		return admission.Errored(400, err)
	}
	return admission.Allowed("")
}

// roundTrip does what the webhook server does around a handler: unmarshal
// the review, handle, complete the response, marshal the review.
func roundTrip(b *testing.B, body []byte, handle func(context.Context, admission.Request) admission.Response) admission.Response {
	var rev admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &rev); err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: *rev.Request}
	resp := handle(context.Background(), req)
	if !resp.Allowed {
		b.Fatalf("denied: %v", resp.Result)
	}
	_ = resp.Complete(req)
	rev.Response = &resp.AdmissionResponse
	if _, err := json.Marshal(rev); err != nil {
		b.Fatal(err)
	}
	return resp
}
