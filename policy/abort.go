package policy

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// What a policy's abortWhen says about chaos now, as recorded in its status
// by the AbortWatcher (policy/controllers).

// ConditionAborted is set on a ChaosPolicy that paused itself.
const ConditionAborted = "Aborted"

// ConditionAbortEvaluated is True while abortWhen answers for the policy's
// current generation; without it the policy allows no chaos.
const ConditionAbortEvaluated = "AbortEvaluated"

// CodeAbortUnknown: the policy's rollback condition cannot be evaluated.
const CodeAbortUnknown Code = "abort-unknown"

// AbortUnknown says why pol's abortWhen cannot vouch for chaos now; "" when
// it can (or the policy has none). The first rule of a game day: no chaos
// while the signal that would stop it is dark.
func AbortUnknown(pol *v1alpha1.ChaosPolicy) string {
	if pol.Spec.AbortWhen == nil {
		return ""
	}
	c := meta.FindStatusCondition(pol.Status.Conditions, ConditionAbortEvaluated)
	switch {
	case c == nil:
		return "abortWhen has not been evaluated yet: no chaos until it answers"
	case c.ObservedGeneration != pol.Generation:
		return "abortWhen has not been evaluated since the policy changed: no chaos until it answers"
	case c.Status != metav1.ConditionTrue:
		return "abortWhen cannot be evaluated (" + c.Message + "): no chaos until it answers"
	}
	return ""
}
