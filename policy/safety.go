package policy

import (
	"fmt"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ProtectedNamespaces never get chaos, whatever a policy says. The injector's
// own namespace is added by the caller.
var ProtectedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Safety holds the built-in rules that run before any policy.
type Safety struct {
	// OwnNamespace is where faultline runs; it is protected too.
	OwnNamespace string
}

// check returns a refusal, or ok=false to carry on.
func (s Safety) check(req *Request) (Decision, bool) {
	if d, stop := s.admissible(req); stop {
		return d, true
	}
	if _, done := req.Pod.Annotations[v1alpha1.AnnotationStatus]; done {
		return Skip(CodeAlreadyInjected, "pod already carries "+v1alpha1.AnnotationStatus+": injection is done once", false), true
	}
	return Decision{}, false
}

// admissible holds the rules that bind a pod for its whole life, not only
// at admission (the Guard checks them again on running pods): protected
// namespaces, opt-in of namespace and pod, hostNetwork.
func (s Safety) admissible(req *Request) (Decision, bool) {
	pod := req.Pod
	ns := pod.Namespace
	for _, p := range append(ProtectedNamespaces, s.OwnNamespace) {
		if p != "" && ns == p {
			return Skip(CodeProtectedNamespace, fmt.Sprintf("namespace %s is protected: faultline never injects into it", ns), false), true
		}
	}
	switch pod.Labels[v1alpha1.LabelPodInject] {
	case "false":
		return Skip(CodeOptedOut, fmt.Sprintf("pod label %s=false opts out", v1alpha1.LabelPodInject), false), true
	case "true":
		if req.NamespaceKnown {
			if v := req.NamespaceLabels[v1alpha1.LabelNamespaceInjection]; v != v1alpha1.NamespaceInjectionOn && v != v1alpha1.NamespaceInjectionAll {
				return Skip(CodeNotOptedIn, fmt.Sprintf("namespace %s is not opted in (label %s=%s or %s is missing)",
					ns, v1alpha1.LabelNamespaceInjection, v1alpha1.NamespaceInjectionOn, v1alpha1.NamespaceInjectionAll), true), true
			}
		}
	default:
		if !req.NamespaceKnown || req.NamespaceLabels[v1alpha1.LabelNamespaceInjection] != v1alpha1.NamespaceInjectionAll {
			// The mutating webhook selects pods by this label: such a pod
			// never reaches it, so this reason is seen only in `faultline
			// explain` and must say what to change.
			return Skip(CodeNotOptedIn, fmt.Sprintf("pod does not carry label %s=true (only a namespace labelled %s=%s takes pods without it): the injector never sees such a pod; add the label to the pod template",
				v1alpha1.LabelPodInject, v1alpha1.LabelNamespaceInjection, v1alpha1.NamespaceInjectionAll), false), true
		}
	}
	if pod.Spec.HostNetwork {
		// Rules in the host's network namespace would hit the node itself.
		return Skip(CodeHostNetwork, "hostNetwork pods share the node's network: faultline never injects into them", true), true
	}
	return Decision{}, false
}
