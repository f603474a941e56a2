package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Code is a reason's stable identifier. The set is closed so that it is safe
// as a Prometheus label value.
type Code string

const (
	CodeInjected           Code = "injected"
	CodeNotOptedIn         Code = "not-opted-in"
	CodeOptedOut           Code = "opted-out"
	CodeProtectedNamespace Code = "protected-namespace"
	CodeHostNetwork        Code = "host-network"
	CodeAlreadyInjected    Code = "already-injected"
	CodeNoFaults           Code = "no-faults"
	CodeInvalidSpec        Code = "invalid-spec"
	CodeProfileUnavailable Code = "profile-unavailable"
	CodePodSecurity        Code = "pod-security"
	CodeNamespaceUnknown   Code = "namespace-unknown"
	CodeNoPolicy           Code = "no-policy"
)

// Reason explains one step of a decision.
type Reason struct {
	Code Code
	// Policy names the ChaosPolicy that decided; empty for built-in rules.
	Policy string
	// Message is a sentence for a human: what was decided and why.
	Message string
	// Notify marks reasons the pod's owner should hear about (a warning on
	// apply, an Event), as opposed to routine skips such as "not opted in".
	Notify bool
}

func (r Reason) String() string {
	if r.Policy != "" {
		return "policy " + r.Policy + ": " + r.Message
	}
	return r.Message
}

// Decision is the outcome for one pod.
type Decision struct {
	Inject bool
	// Spec is what was admitted (normalized); set only when Inject.
	Spec    *v1alpha1.FaultSpec
	Reasons []Reason
	// Reservations are the blast-radius slots Reserve took for this pod.
	Reservations []string
	// slotsIn are the admitting policies whose blast radius Reserve checks;
	// unexported so that only the engine decides where slots are taken.
	slotsIn []*v1alpha1.ChaosPolicy
	// Admitted are the policies that allowed the pod, recorded on it so
	// that they keep binding it after admission (Guard).
	Admitted []PolicyRef
	// ClockVDSO: clock faults may also patch static programs' vDSO
	// (every admitting policy allows it, Pod Security permits it).
	// ClockMethod says which method the pod's programs get and why.
	ClockVDSO   bool
	ClockMethod string
}

// Code is the code of the deciding (last) reason.
func (d Decision) Code() Code {
	if len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[len(d.Reasons)-1].Code
}

// Message joins the reasons for logs and CLI output.
func (d Decision) Message() string {
	parts := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, "; ")
}

// Warnings are the messages the pod's owner should see, each starting with
// prefix (e.g. "faultline: not injected: ").
func (d Decision) Warnings(prefix string) []string {
	var w []string
	for _, r := range d.Reasons {
		if r.Notify {
			w = append(w, prefix+r.String())
		}
	}
	return w
}

// Skip is a refusal with one reason.
func Skip(code Code, msg string, notify bool) Decision {
	return Decision{Reasons: []Reason{{Code: code, Message: msg, Notify: notify}}}
}

// Request is what a decision looks at.
type Request struct {
	// Pod is the pod being created, or a pod built from a workload template
	// (then Name may be empty). Namespace must be set.
	Pod *corev1.Pod
	// NamespaceLabels are the labels of the pod's namespace.
	NamespaceLabels map[string]string
	// ID identifies the admission (its UID), for blast-radius reservations.
	ID string
	// DryRun admissions change nothing outside the response: no
	// blast-radius slot is reserved.
	DryRun bool
	// NamespaceKnown is false when the labels could not be read (offline
	// preview without a Namespace object); rules that need them are skipped
	// only in that mode, never in the webhook.
	NamespaceKnown bool
}
