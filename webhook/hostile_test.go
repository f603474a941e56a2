package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Anyone who reaches the webhook can send it AdmissionReviews (issue 12
// item 8). 10,000 of them, each for a pod that will never exist, with a
// distinct invalid 32 KB fault annotation and 100 labels, through the whole
// handler with the production caches: the heap after a collection stays
// bounded, and so do the decisions waiting for their pod.
func TestTenThousandHostileReviewsKeepTheHeapBounded(t *testing.T) {
	h := testHandler(SidecarNative, prometheus.NewRegistry())
	h.Decider.(*policy.Engine).Specs = policy.NewSpecCache(1024)
	h.Notifier = NewNotifier(events.NewFakeRecorder(16), time.Minute)
	heap := testenv.HeapAfterGC
	pad := strings.Repeat("x", 32<<10)
	labels := map[string]string{v1alpha1.LabelPodInject: "true"}
	for i := range 100 {
		labels[fmt.Sprintf("label-%03d", i)] = strings.Repeat("v", 63)
	}
	review := func(i int) admission.Request {
		pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ghost-%d", i), Namespace: "shop", Labels: labels,
			Annotations: map[string]string{v1alpha1.AnnotationFaults: fmt.Sprintf("network: [{delay: %d%s}]", i, pad)}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		raw, _ := json.Marshal(pod)
		req := admission.Request{}
		req.UID, req.Operation, req.Namespace = types.UID(fmt.Sprint(i)), admissionv1.Create, "shop"
		req.Object.Raw = raw
		return req
	}
	before := heap()
	start := time.Now()
	for i := range 10_000 {
		if resp := h.Handle(context.Background(), review(i)); !resp.Allowed {
			t.Fatalf("review %d was denied: the injector must never deny", i)
		}
	}
	took := time.Since(start)
	grown := int64(heap()) - int64(before)
	t.Logf("10,000 hostile reviews: heap +%.1f MiB after GC, %d decisions pending (cap %d), %.0f µs per review",
		float64(grown)/(1<<20), h.Notifier.Pending(), MaxPending, float64(took.Microseconds())/10_000)
	if h.Notifier.Pending() > MaxPending {
		t.Errorf("%d decisions pending, more than the cap %d", h.Notifier.Pending(), MaxPending)
	}
	if grown > 32<<20 {
		t.Errorf("heap grew %d MiB over 10,000 hostile reviews", grown>>20)
	}
}
