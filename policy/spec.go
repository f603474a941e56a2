package policy

import (
	"fmt"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// requestedSpec reads what the pod asks for from its annotations.
func requestedSpec(req *Request, cache *SpecCache) (*v1alpha1.FaultSpec, Decision, bool) {
	ann := req.Pod.Annotations
	raw, hasFaults := ann[v1alpha1.AnnotationFaults]
	profile, hasProfile := ann[v1alpha1.AnnotationProfile]
	switch {
	case hasFaults && hasProfile:
		return nil, Skip(CodeInvalidSpec, fmt.Sprintf("annotations %s and %s are both set: use one",
			v1alpha1.AnnotationFaults, v1alpha1.AnnotationProfile), true), false
	case hasProfile:
		return nil, Skip(CodeProfileUnavailable, fmt.Sprintf("annotation %s=%s: FaultProfiles need the policy engine, which this version does not have yet",
			v1alpha1.AnnotationProfile, profile), true), false
	case !hasFaults:
		return nil, Skip(CodeNoFaults, fmt.Sprintf("pod has neither %s nor %s", v1alpha1.AnnotationFaults, v1alpha1.AnnotationProfile), true), false
	}
	spec, errs := cache.Parse(raw)
	if len(errs) > 0 {
		return nil, Skip(CodeInvalidSpec, errs.ToAggregate().Error(), true), false
	}
	return spec, Decision{}, true
}
