package webhook

import (
	"encoding/json"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Environment contract between the injector and faultline-agent.
const (
	EnvSpec         = v1alpha1.EnvSpec
	EnvPodName      = v1alpha1.EnvPodName
	EnvPodNamespace = v1alpha1.EnvPodNamespace
	EnvPodInfoDir   = v1alpha1.EnvPodInfoDir
	EnvProbePorts   = v1alpha1.EnvProbePorts
	EnvHostIP       = v1alpha1.EnvHostIP
	EnvTimeFile     = v1alpha1.EnvTimeFile
	EnvLDPreload    = "LD_PRELOAD"
	EnvClockVDSO    = v1alpha1.EnvClockVDSO
)

// InitContainer runs `faultline-agent init`: one-shot setup before the app
// starts (rules that must exist before the first connection, the time shim
// copied into the shared volume).
func InitContainer(cfg Config, spec *v1alpha1.FaultSpec, probePorts []int32, clock Clock) corev1.Container {
	c := corev1.Container{
		Name:            InitContainerName,
		Image:           cfg.AgentImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            []string{"init"},
		Env:             agentEnv(spec, probePorts),
		Resources:       cfg.Resources,
		SecurityContext: securityContext(spec, clock, false),
	}
	if spec.HasClock() {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TimeVolumeName, MountPath: TimeDir})
	}
	return c
}

// AgentContainer runs `faultline-agent run`, the loop that applies faults on
// schedule, obeys the pause annotation and cleans up on exit.
func AgentContainer(cfg Config, spec *v1alpha1.FaultSpec, probePorts []int32, clock Clock) corev1.Container {
	c := corev1.Container{
		Name:            AgentContainerName,
		Image:           cfg.AgentImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            []string{"run", "--listen=:" + strconv.Itoa(int(cfg.AgentPort))},
		Env: append(agentEnv(spec, probePorts),
			corev1.EnvVar{Name: EnvPodName, ValueFrom: fieldRef("metadata.name")},
			corev1.EnvVar{Name: EnvPodNamespace, ValueFrom: fieldRef("metadata.namespace")},
			corev1.EnvVar{Name: EnvPodInfoDir, Value: PodInfoDir},
		),
		Ports:           []corev1.ContainerPort{{Name: "faultline-http", ContainerPort: cfg.AgentPort, Protocol: corev1.ProtocolTCP}},
		Resources:       cfg.Resources,
		SecurityContext: securityContext(spec, clock, true),
		VolumeMounts:    []corev1.VolumeMount{{Name: PodInfoVolumeName, MountPath: PodInfoDir, ReadOnly: true}},
	}
	if clock.VDSO && spec.HasClock() {
		c.Env = append(c.Env, corev1.EnvVar{Name: EnvClockVDSO, Value: "true"})
	}
	if spec.HasClock() {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TimeVolumeName, MountPath: TimeDir})
	}
	if cfg.SidecarMode == SidecarNative {
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	}
	return c
}

func agentEnv(spec *v1alpha1.FaultSpec, probePorts []int32) []corev1.EnvVar {
	js, _ := json.Marshal(spec) // a FaultSpec is plain strings, lists and bools: cannot fail
	env := []corev1.EnvVar{{Name: EnvSpec, Value: string(js)}}
	if len(probePorts) > 0 {
		ports := make([]string, len(probePorts))
		for i, p := range probePorts {
			ports[i] = strconv.Itoa(int(p))
		}
		// The node's address tells the agent where the kubelet's probes
		// come from, so that only those skip the faults on a probe port.
		env = append(env, corev1.EnvVar{Name: EnvProbePorts, Value: strings.Join(ports, ",")},
			corev1.EnvVar{Name: EnvHostIP, ValueFrom: fieldRef("status.hostIP")})
	}
	if spec.HasClock() {
		env = append(env, corev1.EnvVar{Name: EnvTimeFile, Value: TimeFilePath})
	}
	return env
}

func fieldRef(path string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
}

// securityContext grants NET_ADMIN and NET_RAW only for network faults (the
// agent programs iptables and tc as uid 0 in the pod's netns, like Istio's
// init container), SYS_PTRACE only to the running agent that patches vDSOs
// (as uid 0, with init as uid 0 too: they share the state file); clock-only
// chaos otherwise runs as non-root with no capabilities and so passes the
// restricted Pod Security profile.
func securityContext(spec *v1alpha1.FaultSpec, clock Clock, agent bool) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Privileged:               ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	vdso := clock.VDSO && spec.HasClock()
	if spec.HasNetwork() {
		sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN", "NET_RAW"}
	}
	if vdso && agent {
		sc.Capabilities.Add = append(sc.Capabilities.Add, "SYS_PTRACE")
	}
	if spec.HasNetwork() || vdso {
		sc.RunAsUser = ptr.To[int64](0)
		sc.RunAsGroup = ptr.To[int64](0)
		sc.RunAsNonRoot = ptr.To(false)
		return sc
	}
	sc.RunAsUser = ptr.To[int64](65532)
	sc.RunAsGroup = ptr.To[int64](65532)
	sc.RunAsNonRoot = ptr.To(true)
	return sc
}

// PodInfoVolume exposes the pod's annotations to the agent, which is how it
// sees faultline.dev/paused change at run time without API access.
func PodInfoVolume() corev1.Volume {
	return corev1.Volume{Name: PodInfoVolumeName, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		}},
	}}
}

// TimeVolume holds the time shim and its state file, shared by the agent
// (writer) and the app containers (readers).
func TimeVolume() corev1.Volume {
	return corev1.Volume{Name: TimeVolumeName, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("16Mi"))},
	}}
}
