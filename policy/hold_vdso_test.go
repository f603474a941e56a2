package policy

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// A pod admitted with the vDSO patch is stopped when a policy that selects
// it no longer allows clockVDSO; one that only uses the shim is not.
func TestTheVDSOPatchStopsWhenAPolicyNoLongerAllowsIt(t *testing.T) {
	pol := policy(t, "metadata: {name: clocks, uid: u1}\nspec: {limits: {maxClockOffset: 10m, clockVDSO: true}}")
	pod := func(method string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop", Labels: optedIn, Annotations: map[string]string{
				v1alpha1.AnnotationStatus:   `{"faults":["clock"],"clockMethod":"` + method + `"}`,
				v1alpha1.AnnotationAdmitted: EncodeAdmitted([]PolicyRef{{Name: "clocks", UID: types.UID("u1")}}),
			}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: v1alpha1.InitContainerName, Env: []corev1.EnvVar{{Name: v1alpha1.EnvSpec, Value: `{"clock":{"offset":"+5m"}}`}}}},
				Containers:     []corev1.Container{{Name: "app"}},
			},
		}
	}
	hold := func(p *corev1.Pod, pols ...v1alpha1.ChaosPolicy) []string {
		h, err := Hold(context.Background(), Running{Pod: p, NamespaceLabels: nsEnabled, Policies: pols, Now: wednesdayMorning}, Safety{})
		if err != nil {
			t.Fatal(err)
		}
		return h.Stops
	}
	if stops := hold(pod(MethodShimAndVDSO), pol); len(stops) > 0 {
		t.Fatalf("while the policy allows it: %v", stops)
	}
	pol.Spec.Limits.ClockVDSO = false
	if stops := hold(pod(MethodShimAndVDSO), pol); len(stops) != 1 || !strings.Contains(stops[0], "limits.clockVDSO no longer allows") {
		t.Errorf("after the policy dropped clockVDSO: %v, want the pod stopped", stops)
	}
	if stops := hold(pod(MethodShimOnly), pol); len(stops) > 0 {
		t.Errorf("a shim-only pod: %v, want it left running", stops)
	}
}
