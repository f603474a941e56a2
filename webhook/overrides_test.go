package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func TestWorkloadOverridesStayWithinTheOperatorsBounds(t *testing.T) {
	base := DefaultConfig()
	base.AgentImage = "faultline-agent:1"
	base.Bounds.Images = []string{"faultline-agent:debug"}
	noMax := base
	noMax.Bounds.MaxMemory = resource.Quantity{}
	for _, c := range []struct {
		name    string
		cfg     Config
		ann     map[string]string
		problem string // "" when the override applies
		check   func(Config) string
	}{
		{name: "no annotations keep the operator's settings", cfg: base, ann: nil,
			check: func(c Config) string {
				if c.AgentImage != "faultline-agent:1" || c.Resources.Limits.Memory().String() != "64Mi" {
					return "changed: " + c.AgentImage + " " + c.Resources.String()
				}
				return ""
			}},
		{name: "an allowed image is used", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentImage: "faultline-agent:debug"},
			check: func(c Config) string {
				if c.AgentImage != "faultline-agent:debug" {
					return "image " + c.AgentImage
				}
				return ""
			}},
		{name: "the operator's own image is always accepted", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentImage: "faultline-agent:1"}},
		{name: "an image not listed is refused and the list named", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentImage: "evil/agent"},
			problem: `faultline.dev/agent-image: image "evil/agent" is not one the operator allows; allowed: faultline-agent:debug`},
		{name: "with no images listed none is accepted", cfg: DefaultConfig(), ann: map[string]string{v1alpha1.AnnotationAgentImage: "evil/agent"},
			problem: "none are allowed (the chart's agent.overrides.images is empty)"},
		{name: "memory within the bounds is set as request and limit", cfg: base,
			ann: map[string]string{v1alpha1.AnnotationAgentMemory: "100Mi", v1alpha1.AnnotationAgentMemoryLimit: "200Mi"},
			check: func(c Config) string {
				if c.Resources.Requests.Memory().String() != "100Mi" || c.Resources.Limits.Memory().String() != "200Mi" {
					return c.Resources.String()
				}
				return ""
			}},
		{name: "memory above the maximum is refused with the bounds", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentMemoryLimit: "4Gi"},
			problem: "faultline.dev/agent-memory-limit: 4Gi is outside what the operator allows (from 32Mi to 256Mi)"},
		{name: "cpu below the minimum is refused", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentCPU: "1m"},
			problem: "faultline.dev/agent-cpu: 1m is outside what the operator allows (from 5m to 1)"},
		{name: "a value that is not a quantity names the form", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentCPU: "lots"},
			problem: `faultline.dev/agent-cpu: "lots" is not a positive Kubernetes quantity (e.g. 50m or 0.5)`},
		{name: "a negative quantity is refused", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentMemory: "-64Mi"},
			problem: "is not a positive Kubernetes quantity"},
		{name: "a request above the limit asks for the limit too", cfg: base, ann: map[string]string{v1alpha1.AnnotationAgentMemory: "128Mi"},
			problem: "the agent's memory request 128Mi is above its limit 64Mi: set faultline.dev/agent-memory-limit as well"},
		{name: "no maximum means no override of that resource", cfg: noMax, ann: map[string]string{v1alpha1.AnnotationAgentMemory: "48Mi"},
			problem: "no override: the chart's agent.overrides sets no maximum"},
		{name: "every problem is reported at once", cfg: base,
			ann:     map[string]string{v1alpha1.AnnotationAgentImage: "x", v1alpha1.AnnotationAgentCPU: "9", v1alpha1.AnnotationAgentMemory: "y"},
			problem: "faultline.dev/agent-image", check: nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.cfg.Resources.String()
			got, problems := c.cfg.forWorkload(c.ann)
			if c.cfg.Resources.String() != before {
				t.Fatal("the operator's configuration was modified in place")
			}
			joined := strings.Join(problems, "; ")
			switch {
			case c.problem == "" && len(problems) > 0:
				t.Fatalf("refused: %s", joined)
			case c.problem != "" && !strings.Contains(joined, c.problem):
				t.Fatalf("problems %q, want one containing %q", joined, c.problem)
			case c.name == "every problem is reported at once" && len(problems) != 3:
				t.Fatalf("%d problems, want 3: %s", len(problems), joined)
			}
			if c.check != nil {
				if msg := c.check(got); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func TestAgentResourceFlagsAndBoundsAreValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "memory request 1Gi: must not be above its limit 64Mi") {
		t.Errorf("request above limit: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Bounds.MinCPU = resource.MustParse("2")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "minimum 2 is above maximum 1") {
		t.Errorf("inverted bounds: %v", err)
	}
}
