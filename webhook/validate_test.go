package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// A template that asks for faults but whose pods the mutating webhook never
// selects gets a warning at apply time: otherwise nothing, not even a
// refusal, would tell its owner.
func TestWorkloadValidatorHintsAtPodsTheInjectorWillNeverSee(t *testing.T) {
	v := &WorkloadValidator{Injector: NewInjector(DefaultConfig()), Namespaces: staticNamespaces{
		"shop":   {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn},
		"always": {v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionAll},
	}}
	deployment := func(ns, labels string) admission.Request {
		raw, err := yaml.YAMLToJSON([]byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web` + labels + `}
      annotations: {faultline.dev/faults: "network: [{delay: 100ms}]"}
    spec: {containers: [{name: web, image: web:1}]}
`))
		if err != nil {
			t.Fatal(err)
		}
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: ns,
			Object: runtime.RawExtension{Raw: raw}}}
	}
	for _, c := range []struct {
		name, ns, labels, warning string
	}{
		{name: "a template without the label in an enabled namespace is warned", ns: "shop",
			warning: `has no label faultline.dev/inject="true": in namespace shop (faultline.dev/injection=enabled) its pods never reach the injector`},
		{name: "a template with the label is not warned", ns: "shop", labels: `, faultline.dev/inject: "true"`},
		{name: "a template in an always namespace needs no label", ns: "always"},
		{name: "a template that opts out while asking for faults is warned", ns: "always", labels: `, faultline.dev/inject: "false"`,
			warning: "opts its pods out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := v.Handle(context.Background(), deployment(c.ns, c.labels))
			if !resp.Allowed {
				t.Fatalf("denied: %s", resp.Result.Message)
			}
			got := strings.Join(resp.Warnings, "\n")
			if c.warning == "" && got != "" {
				t.Fatalf("unexpected warning %q", got)
			}
			if !strings.Contains(got, c.warning) {
				t.Fatalf("warnings %q, want %q", got, c.warning)
			}
		})
	}
}
