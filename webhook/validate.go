package webhook

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/faultline-dev/faultline/webhook/workload"
)

// ValidatePath serves the validating webhook for workload templates.
const ValidatePath = "/validate-workloads"

// WorkloadValidator refuses workloads whose pod template carries a faultline
// annotation that does not parse, so the mistake shows at `kubectl apply`
// rather than as pods that quietly get no chaos. Only syntax is judged
// here; policies never block a workload.
type WorkloadValidator struct {
	Metrics *Metrics
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
	problems := workload.Validate([]*workload.Object{obj})
	if len(problems) == 0 {
		return admission.Allowed("")
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Err.Error()
	}
	return admission.Denied(fmt.Sprintf("faultline: %s: %s", obj.ID(), strings.Join(msgs, "; ")))
}
