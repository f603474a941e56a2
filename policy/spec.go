package policy

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ProfileSource finds FaultProfiles (the informer cache in the webhook,
// documents in the input offline).
type ProfileSource interface {
	FaultProfile(ctx context.Context, namespace, name string) (*v1alpha1.FaultProfile, error)
}

// DefaultsSource gives the defaultFaults that apply to a pod of an always-on
// namespace that asks for nothing itself (the Policies limiter is one).
type DefaultsSource interface {
	DefaultFaults(ctx context.Context, req *Request) (*v1alpha1.FaultSpec, string)
}

// requestedSpec reads what the pod asks for: its faults annotation, the
// FaultProfile it names, or, in an always-on namespace, a policy's
// defaultFaults.
func (e *Engine) requestedSpec(ctx context.Context, req *Request) (*v1alpha1.FaultSpec, Decision, bool) {
	cache := e.Specs
	ann := req.Pod.Annotations
	raw, hasFaults := ann[v1alpha1.AnnotationFaults]
	profile, hasProfile := ann[v1alpha1.AnnotationProfile]
	switch {
	case hasFaults && hasProfile:
		return nil, Skip(CodeInvalidSpec, fmt.Sprintf("annotations %s and %s are both set: use one",
			v1alpha1.AnnotationFaults, v1alpha1.AnnotationProfile), true), false
	case hasProfile:
		return e.profileSpec(ctx, req, profile)
	case !hasFaults:
		if ds, ok := e.Limiter.(DefaultsSource); ok && req.NamespaceLabels[v1alpha1.LabelNamespaceInjection] == v1alpha1.NamespaceInjectionAll {
			if spec, pol := ds.DefaultFaults(ctx, req); spec != nil {
				return spec, Decision{Reasons: []Reason{{Code: CodeInjected, Policy: pol, Message: "defaultFaults for an always-on namespace"}}}, true
			}
		}
		return nil, Skip(CodeNoFaults, fmt.Sprintf("pod has neither %s nor %s", v1alpha1.AnnotationFaults, v1alpha1.AnnotationProfile), true), false
	}
	spec, errs := cache.Parse(raw)
	if len(errs) > 0 {
		return nil, Skip(CodeInvalidSpec, errs.ToAggregate().Error(), true), false
	}
	return spec, Decision{}, true
}

func (e *Engine) profileSpec(ctx context.Context, req *Request, name string) (*v1alpha1.FaultSpec, Decision, bool) {
	if e.Profiles == nil {
		return nil, Skip(CodeProfileUnavailable, fmt.Sprintf("annotation %s=%s: no FaultProfiles are available here", v1alpha1.AnnotationProfile, name), true), false
	}
	p, err := e.Profiles.FaultProfile(ctx, req.Pod.Namespace, name)
	if err != nil || p == nil {
		why := "not found"
		if err != nil {
			why = err.Error()
		}
		return nil, Skip(CodeProfileUnavailable, fmt.Sprintf("annotation %s=%s: FaultProfile %s/%s: %s", v1alpha1.AnnotationProfile, name, req.Pod.Namespace, name, why), true), false
	}
	spec := p.Spec.DeepCopy()
	if errs := spec.Validate(field.NewPath("FaultProfile "+name, "spec")); len(errs) > 0 {
		return nil, Skip(CodeInvalidSpec, errs.ToAggregate().Error(), true), false
	}
	spec.Normalize()
	return spec, Decision{}, true
}
