package charts

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// The chart's ValidatingAdmissionPolicies, enforced by a real API server:
// a tenant (anyone but faultline's ServiceAccount, cluster-admin included)
// cannot rewrite what faultline recorded, lift its pause or swap the agent's
// image; faultline's ServiceAccount can change faultline.dev/ annotations
// and nothing else.
func TestProtectionPoliciesHoldInARealAPIServer(t *testing.T) {
	cfg, scheme, admin := testenv.APIServer(t, nil)
	ctx := context.Background()
	for _, o := range objects(t, render(t)) {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if err := admin.Create(ctx, o); err != nil {
				t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	const sa = "system:serviceaccount:faultline-system:faultline"
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sa-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: sa}}}); err != nil {
		t.Fatal(err)
	}
	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: sa}
	self, err := client.New(saCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop", Labels: map[string]string{"app": "cart"},
		Annotations: map[string]string{v1alpha1.AnnotationStatus: "{}", v1alpha1.AnnotationAdmitted: `[{"name":"p","uid":"u","generation":1}]`,
			v1alpha1.AnnotationPaused: "true", v1alpha1.AnnotationPausedBy: "faultline: policy p: paused (kill switch)", "team": "shop"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: v1alpha1.InitContainerName, Image: "ghcr.io/faultline-dev/faultline-agent:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app:1"}}}}
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	patch := func(c client.Client, p map[string]any) error {
		body, _ := json.Marshal(p)
		return c.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop"}}, client.RawPatch(types.StrategicMergePatchType, body))
	}
	ann := func(kv map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"annotations": kv}}
	}
	image := func(container, img string, init bool) map[string]any {
		list := "containers"
		if init {
			list = "initContainers"
		}
		return map[string]any{"spec": map[string]any{list: []map[string]any{{"name": container, "image": img}}}}
	}

	// The API server loads policies asynchronously: wait for the first denial.
	start := time.Now()
	for {
		err := patch(admin, ann(map[string]any{v1alpha1.AnnotationAdmitted: `[{"name":"p","uid":"forged","generation":1}]`}))
		if err != nil && strings.Contains(err.Error(), "written by faultline only") {
			break
		}
		if err == nil {
			// Undo, as the ServiceAccount (allowed), and try again.
			_ = patch(self, ann(map[string]any{v1alpha1.AnnotationAdmitted: `[{"name":"p","uid":"u","generation":1}]`}))
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the protection policy never took effect: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cases := []struct {
		name    string
		as      client.Client
		patch   map[string]any
		allowed bool
		want    string
	}{
		{"a tenant cannot rewrite the admission record", admin, ann(map[string]any{v1alpha1.AnnotationAdmitted: "[]"}), false, "written by faultline only"},
		{"a tenant cannot claim other blast-radius slots", admin, ann(map[string]any{v1alpha1.AnnotationReservations: "faultline-br-00/x"}), false, "written by faultline only"},
		{"a tenant cannot remove the injection status", admin, ann(map[string]any{v1alpha1.AnnotationStatus: nil}), false, "written by faultline only"},
		{"a tenant cannot lift a pause faultline set", admin, ann(map[string]any{v1alpha1.AnnotationPaused: nil}), false, "only faultline lifts that pause"},
		{"a tenant cannot swap the agent's image", admin, image(v1alpha1.InitContainerName, "evil:latest", true), false, "keep their image"},
		{"a tenant can change their own app's image", admin, image("app", "app:2", false), true, ""},
		{"a tenant can change their own annotations", admin, ann(map[string]any{"team": "checkout"}), true, ""},
		{"faultline cannot change a pod's labels", self, map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "x"}}}, false, "may not change a pod's labels"},
		{"faultline cannot change a tenant's annotation", self, ann(map[string]any{"team": "x"}), false, "only faultline.dev/ annotations"},
		{"faultline cannot change a pod's images", self, image("app", "app:3", false), false, "may not change a pod's spec"},
		{"faultline lifts its own pause", self, ann(map[string]any{v1alpha1.AnnotationPaused: nil, v1alpha1.AnnotationPausedBy: nil}), true, ""},
		{"a tenant can pause their pod's faults by hand", admin, ann(map[string]any{v1alpha1.AnnotationPaused: "true"}), true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := patch(c.as, c.patch)
			switch {
			case c.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !c.allowed && err == nil:
				t.Fatal("allowed")
			case !c.allowed && !strings.Contains(err.Error(), c.want):
				t.Fatalf("refused with %v, want a message with %q", err, c.want)
			}
		})
	}
}
