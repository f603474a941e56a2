package webhook

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook/workload"
)

// ValidatePath serves the validating webhook for workload templates.
const ValidatePath = "/validate-workloads"

// WorkloadValidator refuses workloads whose pod template carries a faultline
// annotation that does not parse, or agent overrides outside the operator's
// bounds, so the mistake shows at `kubectl apply` rather than as pods that
// quietly get no chaos. Only syntax and bounds are judged here; policies
// never block a workload. A template that asks for faults but whose pods
// would never reach the injector (the opt-in label is missing where the
// namespace needs it) is admitted with a warning saying so.
type WorkloadValidator struct {
	// Injector supplies the override bounds; nil checks no overrides.
	Injector *Injector
	// Namespaces tells whether the namespace needs the pod label; nil
	// gives no hint.
	Namespaces NamespaceReader
}

var _ admission.Handler = (*WorkloadValidator)(nil)

func (v *WorkloadValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	obj, err := workload.ParseObject(req.Object.Raw, req.Namespace)
	if err != nil {
		// Not ours to judge: the API server validates the object itself.
		logf.FromContext(ctx).V(1).Info("not a workload faultline reads", "kind", req.Kind.Kind, "err", err.Error())
		return admission.Allowed("")
	}
	var msgs []string
	for _, p := range workload.Validate([]*workload.Object{obj}) {
		msgs = append(msgs, p.Err.Error())
	}
	if v.Injector != nil && obj.Template != nil {
		_, problems := v.Injector.cfg.forWorkload(obj.Template.Annotations)
		msgs = append(msgs, problems...)
	}
	if len(msgs) > 0 {
		return admission.Denied(fmt.Sprintf("faultline: %s: %s", obj.ID(), strings.Join(msgs, "; ")))
	}
	if hint := v.neverInjected(ctx, obj); hint != "" {
		return admission.Allowed("").WithWarnings("faultline: " + obj.ID() + ": " + hint)
	}
	return admission.Allowed("")
}

// neverInjected says why a template that asks for faults makes pods the
// injector never sees: the mutating webhook selects pods by label, so
// without it nothing reaches faultline, not even a refusal to explain.
func (v *WorkloadValidator) neverInjected(ctx context.Context, obj *workload.Object) string {
	if v.Namespaces == nil || obj.Template == nil || !v1alpha1.AsksForFaults(obj.Template.Annotations) {
		return ""
	}
	labels, err := v.Namespaces.NamespaceLabels(ctx, obj.Namespace)
	if err != nil {
		return ""
	}
	optIn := obj.Template.Labels[v1alpha1.LabelPodInject]
	switch ns := labels[v1alpha1.LabelNamespaceInjection]; {
	case optIn == "false":
		return fmt.Sprintf("the pod template asks for faults but its label %s=false opts its pods out: they will get none", v1alpha1.LabelPodInject)
	case ns == v1alpha1.NamespaceInjectionOn && optIn != "true":
		return fmt.Sprintf("the pod template asks for faults but has no label %s=\"true\": in namespace %s (%s=%s) its pods never reach the injector; add the label to the pod template's metadata.labels",
			v1alpha1.LabelPodInject, obj.Namespace, v1alpha1.LabelNamespaceInjection, ns)
	}
	return ""
}
