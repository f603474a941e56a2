package policy

import (
	"fmt"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// LabelPSAEnforce is Pod Security Admission's namespace label.
const LabelPSAEnforce = "pod-security.kubernetes.io/enforce"

// podSecurity refuses network faults where Pod Security Admission would
// reject the NET_ADMIN the agent needs: the mutated pod would then fail to be
// created at all, which is exactly what a chaos tool must never cause.
// Clock-only chaos needs no capability and passes the restricted profile.
func podSecurity(req *Request, spec *v1alpha1.FaultSpec) (Decision, bool) {
	if !spec.HasNetwork() {
		return Decision{}, false
	}
	if level, forbids := forbidsCapabilities(req); forbids {
		return Skip(CodePodSecurity, fmt.Sprintf("namespace %s enforces Pod Security %q, which forbids the NET_ADMIN capability network faults need; clock faults alone would be allowed",
			req.Pod.Namespace, level), true), true
	}
	return Decision{}, false
}

// forbidsCapabilities says whether the pod's namespace enforces a Pod
// Security level that forbids adding capabilities (NET_ADMIN, SYS_PTRACE).
func forbidsCapabilities(req *Request) (level string, forbids bool) {
	if !req.NamespaceKnown {
		return "", false
	}
	level = req.NamespaceLabels[LabelPSAEnforce]
	return level, level == "baseline" || level == "restricted"
}
