package webhook

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// CodeBadOverride: a per-workload agent setting is malformed or outside
// what the operator allows.
const CodeBadOverride policy.Code = "bad-override"

// Bounds are what the operator lets a workload choose for its agent with
// the faultline.dev/agent-* annotations (the chart's agent.overrides).
// The image is a privileged container in the tenant's pod, so only listed
// images are accepted; resources only between the minimum (below it the
// agent cannot hold its rules and its queues) and the maximum.
type Bounds struct {
	// Images a workload may name in faultline.dev/agent-image, exactly.
	Images []string
	// MinCPU..MaxMemory bound every request and limit set by annotation;
	// a zero maximum allows no override of that resource.
	MinCPU, MaxCPU, MinMemory, MaxMemory resource.Quantity
}

// resourceKeys: annotation, resource, and whether it sets the limit.
var resourceKeys = []struct {
	key   string
	name  corev1.ResourceName
	limit bool
}{
	{v1alpha1.AnnotationAgentCPU, corev1.ResourceCPU, false},
	{v1alpha1.AnnotationAgentCPULimit, corev1.ResourceCPU, true},
	{v1alpha1.AnnotationAgentMemory, corev1.ResourceMemory, false},
	{v1alpha1.AnnotationAgentMemoryLimit, corev1.ResourceMemory, true},
}

// forWorkload is cfg with the workload's annotations applied, or every
// reason they cannot be, each naming the annotation, the value and the
// allowed form.
func (cfg Config) forWorkload(annotations map[string]string) (Config, []string) {
	var problems []string
	if img, ok := annotations[v1alpha1.AnnotationAgentImage]; ok && img != cfg.AgentImage {
		if slices.Contains(cfg.Bounds.Images, img) {
			cfg.AgentImage = img
		} else {
			allowed := "none are allowed (the chart's agent.overrides.images is empty)"
			if len(cfg.Bounds.Images) > 0 {
				allowed = "allowed: " + strings.Join(cfg.Bounds.Images, ", ")
			}
			problems = append(problems, fmt.Sprintf("%s: image %q is not one the operator allows; %s", v1alpha1.AnnotationAgentImage, img, allowed))
		}
	}
	res := corev1.ResourceRequirements{Requests: cfg.Resources.Requests.DeepCopy(), Limits: cfg.Resources.Limits.DeepCopy()}
	changed := false
	for _, k := range resourceKeys {
		raw, ok := annotations[k.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(raw)
		if err != nil || q.Sign() <= 0 {
			problems = append(problems, fmt.Sprintf("%s: %q is not a positive Kubernetes quantity (e.g. %s)", k.key, raw, example(k.name)))
			continue
		}
		lo, hi := cfg.Bounds.MinCPU, cfg.Bounds.MaxCPU
		if k.name == corev1.ResourceMemory {
			lo, hi = cfg.Bounds.MinMemory, cfg.Bounds.MaxMemory
		}
		if hi.IsZero() || q.Cmp(lo) < 0 || q.Cmp(hi) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s is outside what the operator allows (%s)", k.key, raw, describeBounds(lo, hi)))
			continue
		}
		list := res.Requests
		if k.limit {
			list = res.Limits
		}
		if list == nil {
			list = corev1.ResourceList{}
			if k.limit {
				res.Limits = list
			} else {
				res.Requests = list
			}
		}
		list[k.name], changed = q, true
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := res.Requests[name]
		lim, hasLim := res.Limits[name]
		if changed && hasReq && hasLim && req.Cmp(lim) > 0 {
			problems = append(problems, fmt.Sprintf("the agent's %s request %s is above its limit %s: set %s as well",
				name, req.String(), lim.String(), limitKey(name)))
		}
	}
	if len(problems) > 0 {
		return cfg, problems
	}
	cfg.Resources = res
	return cfg, nil
}

func example(name corev1.ResourceName) string {
	if name == corev1.ResourceCPU {
		return "50m or 0.5"
	}
	return "64Mi"
}

func limitKey(name corev1.ResourceName) string {
	if name == corev1.ResourceCPU {
		return v1alpha1.AnnotationAgentCPULimit
	}
	return v1alpha1.AnnotationAgentMemoryLimit
}

func describeBounds(lo, hi resource.Quantity) string {
	if hi.IsZero() {
		return "no override: the chart's agent.overrides sets no maximum"
	}
	return fmt.Sprintf("from %s to %s", lo.String(), hi.String())
}

// overrideReason turns the problems into the decision's reason.
func overrideReason(problems []string) *policy.Reason {
	return &policy.Reason{Code: CodeBadOverride, Notify: true, Message: strings.Join(problems, "; ")}
}
