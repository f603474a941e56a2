package webhook

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// SidecarMode selects how the agent runs next to the app.
type SidecarMode string

const (
	// SidecarNative runs the agent as an init container with
	// restartPolicy: Always (Kubernetes native sidecars, GA in 1.33): it
	// starts before the app and stops after it.
	SidecarNative SidecarMode = "native"
	// SidecarClassic appends the agent to spec.containers, for clusters
	// whose kubelets predate native sidecars.
	SidecarClassic SidecarMode = "classic"
)

// Names of what the injector adds; the status annotation lists them.
const (
	InitContainerName  = v1alpha1.InitContainerName
	AgentContainerName = v1alpha1.AgentContainerName
	PodInfoVolumeName  = "faultline-podinfo"
	TimeVolumeName     = "faultline-time"

	PodInfoDir   = "/etc/faultline/podinfo"
	TimeDir      = "/faultline/time"
	TimeShimPath = TimeDir + "/" + v1alpha1.ShimName
	TimeFilePath = TimeDir + "/state"

	DefaultAgentPort = v1alpha1.DefaultAgentPort
)

// Config is everything about injection that the operator chooses.
type Config struct {
	AgentImage      string
	ImagePullPolicy corev1.PullPolicy
	SidecarMode     SidecarMode
	// AgentPort serves the agent's /metrics, /healthz and /status inside the
	// pod's network namespace, so it must not clash with the app's ports.
	AgentPort int32
	// Version is recorded in the status annotation.
	Version   string
	Resources corev1.ResourceRequirements
	// Bounds limit what a workload may set for its agent by annotation.
	Bounds Bounds
}

// DefaultConfig is what the webhook binary starts from.
func DefaultConfig() Config {
	return Config{
		AgentImage:      "ghcr.io/faultline-dev/faultline-agent:latest",
		ImagePullPolicy: corev1.PullIfNotPresent,
		SidecarMode:     SidecarNative,
		AgentPort:       DefaultAgentPort,
		Version:         "dev",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("200m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
		Bounds: Bounds{
			MinCPU: resource.MustParse("5m"), MaxCPU: resource.MustParse("1"),
			MinMemory: resource.MustParse("32Mi"), MaxMemory: resource.MustParse("256Mi"),
		},
	}
}

// Validate reports the first bad setting, naming it.
func (c Config) Validate() error {
	switch {
	case c.AgentImage == "":
		return fmt.Errorf("agent image: must not be empty")
	case c.SidecarMode != SidecarNative && c.SidecarMode != SidecarClassic:
		return fmt.Errorf("sidecar mode %q: must be native or classic", c.SidecarMode)
	case c.AgentPort < 1 || c.AgentPort > 65535:
		return fmt.Errorf("agent port %d: must be 1-65535", c.AgentPort)
	case c.Bounds.MinCPU.Cmp(c.Bounds.MaxCPU) > 0 && !c.Bounds.MaxCPU.IsZero():
		return fmt.Errorf("agent override CPU bounds: minimum %s is above maximum %s", c.Bounds.MinCPU.String(), c.Bounds.MaxCPU.String())
	case c.Bounds.MinMemory.Cmp(c.Bounds.MaxMemory) > 0 && !c.Bounds.MaxMemory.IsZero():
		return fmt.Errorf("agent override memory bounds: minimum %s is above maximum %s", c.Bounds.MinMemory.String(), c.Bounds.MaxMemory.String())
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		lim, hasLim := c.Resources.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			return fmt.Errorf("agent %s request %s: must not be above its limit %s", name, req.String(), lim.String())
		}
	}
	return nil
}
