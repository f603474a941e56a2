package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Path is where the pod mutating webhook is served.
const Path = "/mutate-v1-pod"

// Decision codes the handler adds to the policy's own.
const (
	CodeNotCreate   policy.Code = "not-create"
	CodeDecodeError policy.Code = "decode-error"
	CodeEncodeError policy.Code = "encode-error"
)

// NamespaceReader returns a namespace's labels (from an informer cache in
// the binary).
type NamespaceReader interface {
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
}

// Decider is the policy engine as the handler sees it. Decide reads only;
// Reserve takes the decision's blast-radius slots (or refuses), and is
// called once the patch is built, so no slot is ever handed back.
type Decider interface {
	Decide(ctx context.Context, req *policy.Request) policy.Decision
	Reserve(ctx context.Context, req *policy.Request, d policy.Decision) policy.Decision
}

// Handler is the pod injector: decode, decide, build the patch, reserve the
// blast-radius slots (last, so that nothing after them can fail), respond.
type Handler struct {
	Decider    Decider
	Namespaces NamespaceReader
	Injector   *Injector
	Metrics    *Metrics
	// Notifier turns decisions into Events once their pod exists; nil
	// leaves them to the warning and the metric.
	Notifier *Notifier
}

var _ admission.Handler = (*Handler)(nil)

// Handle admits every pod; injection is a patch on top, never a condition.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result, code := h.handle(ctx, req)
	h.Metrics.observe(result, code, time.Since(start))
	logf.FromContext(ctx).V(1).Info("admission", "namespace", req.Namespace, "name", req.Name,
		"operation", req.Operation, "result", result, "reason", code)
	return resp
}

func (h *Handler) handle(ctx context.Context, req admission.Request) (admission.Response, string, policy.Code) {
	log := logf.FromContext(ctx)
	if req.Operation != admissionv1.Create {
		return skipped(policy.Skip(CodeNotCreate, "only pod creation is handled", false))
	}

	// Decode.
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		log.Error(err, "decoding pod", "namespace", req.Namespace)
		return admission.Allowed("faultline: pod could not be decoded; not injected").
			WithWarnings(fmt.Sprintf("faultline: not injected: decoding pod: %v", err)), ResultError, CodeDecodeError
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}

	// Decide.
	labels, err := h.Namespaces.NamespaceLabels(ctx, pod.Namespace)
	if err != nil {
		// Without the namespace we cannot check opt-in or Pod Security; a
		// patch PSA then rejects would fail the pod, so inject nothing.
		log.Error(err, "reading namespace", "namespace", pod.Namespace)
		return skip(pod, policy.Skip(policy.CodeNamespaceUnknown,
			fmt.Sprintf("namespace %s could not be read (%v): not injected", pod.Namespace, err), true))
	}
	dryRun := req.DryRun != nil && *req.DryRun
	preq := &policy.Request{Pod: pod, NamespaceLabels: labels, NamespaceKnown: true, ID: string(req.UID), DryRun: dryRun}
	decision := h.Decider.Decide(ctx, preq)
	if !dryRun {
		// Deferred until the pod exists; a pod whose patch fails below
		// still gets the Event of what was decided.
		defer func() { h.Notifier.Expect(pod, decision) }()
	}
	if !decision.Inject {
		return skip(pod, decision)
	}

	// Build the patch.
	patch, conflict := h.Injector.BuildPatch(&pod.ObjectMeta, &pod.Spec, "", decision.Spec, Clock{VDSO: decision.ClockVDSO, Method: decision.ClockMethod})
	if conflict != nil {
		decision.Inject = false
		decision.Reasons = append(decision.Reasons, *conflict)
		return skip(pod, decision)
	}
	if decision = h.Decider.Reserve(ctx, preq, decision); !decision.Inject {
		return skip(pod, decision)
	}

	// Respond.
	// After BuildPatch's ops, so the annotations map exists by now.
	if len(decision.Reservations) > 0 {
		patch.Ops = append(patch.Ops, jsonpatch.NewOperation("add",
			"/metadata/annotations/"+escape(v1alpha1.AnnotationReservations), strings.Join(decision.Reservations, ",")))
	}
	if len(decision.Admitted) > 0 {
		patch.Ops = append(patch.Ops, jsonpatch.NewOperation("add",
			"/metadata/annotations/"+escape(v1alpha1.AnnotationAdmitted), policy.EncodeAdmitted(decision.Admitted)))
	}
	body, err := patch.JSON()
	if err != nil {
		// Cannot happen for strings; were it to, the sweeper frees the
		// slots once no pod claims them (inFlight).
		log.Error(err, "encoding patch", "namespace", pod.Namespace, "pod", podName(pod))
		return admission.Allowed("faultline: not injected: encoding the patch failed").
			WithWarnings("faultline: not injected: encoding the patch: " + err.Error()), ResultError, CodeEncodeError
	}
	log.Info("injecting", "namespace", pod.Namespace, "pod", podName(pod), "faults", decision.Spec.Kinds(), "reason", decision.Message())
	return patched(body, "faultline: injected "+fmt.Sprint(decision.Spec.Kinds()),
		append(decision.Warnings("faultline: "), patch.Warnings...)), ResultInjected, decision.Code()
}

// patched is admission.Patched for a patch encoded in advance (see
// Patch.JSON); the response's Patches stay empty so Complete leaves it alone.
func patched(body []byte, msg string, warnings []string) admission.Response {
	resp := admission.Allowed(msg).WithWarnings(warnings...)
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = body, &pt
	return resp
}

// decodePod decodes the pod as the API server's JSON serializer would
// (case-sensitive field names), without admission.Decoder's scheme lookup:
// that first scans the whole object once more for apiVersion and kind, which
// cost a third of the handler's time, and the request already says it is a Pod.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errors.New("request has no object")
	}
	pod := &corev1.Pod{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// skip answers a pod that is not injected. A pod that asked for faults is
// marked with the decision's code, so that one created while the injector
// was unreachable can be told apart later (MissedReporter).
func skip(pod *corev1.Pod, d policy.Decision) (admission.Response, string, policy.Code) {
	resp, result, code := skipped(d)
	_, injected := pod.Annotations[v1alpha1.AnnotationStatus]
	if !v1alpha1.AsksForFaults(pod.Annotations) || injected {
		return resp, result, code
	}
	// The annotations map exists: it holds the faults or profile key.
	body, err := json.Marshal([]jsonpatch.Operation{jsonpatch.NewOperation("add",
		"/metadata/annotations/"+escape(v1alpha1.AnnotationDecision), string(d.Code()))})
	if err != nil {
		return resp, result, code
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = body, &pt
	return resp, result, code
}

func skipped(d policy.Decision) (admission.Response, string, policy.Code) {
	return admission.Allowed("faultline: not injected: " + d.Message()).WithWarnings(d.Warnings("faultline: not injected: ")...), ResultSkipped, d.Code()
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}
