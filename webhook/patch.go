package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// CodeConflict: the pod already uses a name or port the injector needs.
const CodeConflict policy.Code = "conflict"

// Status is the value of the faultline.dev/status annotation: what was
// injected and by which version, so upgrades and `kubectl get -o yaml`
// can tell.
type Status struct {
	Version        string   `json:"version"`
	Faults         []string `json:"faults"`
	Sidecar        string   `json:"sidecar"`
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes"`
}

// Patch is the result of building an injection.
type Patch struct {
	Ops []jsonpatch.JsonPatchOperation
	// Warnings are things the owner should know although injection went ahead.
	Warnings []string
}

// BuildPatch returns the JSON-patch operations that inject the admitted spec
// into a pod. prefix locates the pod template in the object being patched:
// "" for a Pod, "/spec/template" for a Deployment, and so on. A conflict with
// what the pod already has is returned as a reason, never papered over.
func BuildPatch(meta *metav1.ObjectMeta, pod *corev1.PodSpec, prefix string, cfg Config, spec *v1alpha1.FaultSpec) (*Patch, *policy.Reason) {
	if r := conflicts(pod, cfg); r != nil {
		return nil, r
	}
	probes := ProbePorts(pod)
	p := &Patch{}
	add := func(path string, v any) {
		p.Ops = append(p.Ops, jsonpatch.NewOperation("add", prefix+path, v))
	}

	volumes := []corev1.Volume{PodInfoVolume()}
	if spec.HasClock() {
		volumes = append(volumes, TimeVolume())
	}
	status := Status{Version: cfg.Version, Faults: spec.Kinds(), Sidecar: string(cfg.SidecarMode)}
	for _, v := range volumes {
		status.Volumes = append(status.Volumes, v.Name)
	}

	initc := InitContainer(cfg, spec, probes)
	agent := AgentContainer(cfg, spec, probes)
	inits := []corev1.Container{initc}
	status.InitContainers = []string{initc.Name}
	if cfg.SidecarMode == SidecarNative {
		inits = append(inits, agent)
		status.InitContainers = append(status.InitContainers, agent.Name)
	} else {
		status.Containers = []string{agent.Name}
	}

	statusJSON, _ := json.Marshal(status) // plain strings: cannot fail
	if meta.Annotations == nil {
		add("/metadata/annotations", map[string]string{v1alpha1.AnnotationStatus: string(statusJSON)})
	} else {
		add("/metadata/annotations/"+escape(v1alpha1.AnnotationStatus), string(statusJSON))
	}

	if pod.Volumes == nil {
		add("/spec/volumes", volumes)
	} else {
		for _, v := range volumes {
			add("/spec/volumes/-", v)
		}
	}

	// faultline-init goes first so that its rules exist before any other
	// init container or the app opens a connection.
	if pod.InitContainers == nil {
		add("/spec/initContainers", inits)
	} else {
		for i, c := range inits {
			add("/spec/initContainers/"+strconv.Itoa(i), c)
		}
	}
	if cfg.SidecarMode == SidecarClassic {
		add("/spec/containers/-", agent)
	}

	if spec.HasClock() {
		for i := range pod.Containers {
			p.Warnings = append(p.Warnings, preloadOps(&pod.Containers[i], prefix+"/spec/containers/"+strconv.Itoa(i), &p.Ops)...)
		}
	}
	return p, nil
}

// preloadOps makes one app container load the time shim: LD_PRELOAD is
// appended to, never replaced, so the app's own preloads keep working.
func preloadOps(c *corev1.Container, path string, ops *[]jsonpatch.JsonPatchOperation) []string {
	add := func(p string, v any) { *ops = append(*ops, jsonpatch.NewOperation("add", path+p, v)) }
	mount := corev1.VolumeMount{Name: TimeVolumeName, MountPath: TimeDir, ReadOnly: true}
	if c.VolumeMounts == nil {
		add("/volumeMounts", []corev1.VolumeMount{mount})
	} else {
		add("/volumeMounts/-", mount)
	}
	env := []corev1.EnvVar{{Name: EnvTimeFile, Value: TimeFilePath}}
	var warnings []string
	idx := -1
	for j, e := range c.Env {
		if e.Name == EnvLDPreload {
			idx = j
		}
	}
	switch {
	case idx < 0:
		env = append(env, corev1.EnvVar{Name: EnvLDPreload, Value: TimeShimPath})
	case c.Env[idx].ValueFrom != nil:
		warnings = append(warnings, fmt.Sprintf("faultline: container %s takes LD_PRELOAD from a reference, so faultline cannot append the time shim: its clock is not faked", c.Name))
	default:
		old := strings.TrimSpace(c.Env[idx].Value)
		v := TimeShimPath
		if old != "" {
			v = old + ":" + TimeShimPath
		}
		*ops = append(*ops, jsonpatch.NewOperation("replace", path+"/env/"+strconv.Itoa(idx)+"/value", v))
	}
	if c.Env == nil {
		add("/env", env)
	} else {
		for _, e := range env {
			add("/env/-", e)
		}
	}
	return warnings
}

func conflicts(pod *corev1.PodSpec, cfg Config) *policy.Reason {
	conflict := func(msg string, args ...any) *policy.Reason {
		return &policy.Reason{Code: CodeConflict, Message: fmt.Sprintf(msg, args...), Notify: true}
	}
	for _, list := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for _, c := range list {
			if c.Name == InitContainerName || c.Name == AgentContainerName {
				return conflict("pod already has a container named %s", c.Name)
			}
			for _, port := range c.Ports {
				if port.ContainerPort == cfg.AgentPort {
					return conflict("container %s uses port %d, which the faultline agent needs in the pod's network namespace", c.Name, cfg.AgentPort)
				}
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Name == PodInfoVolumeName || v.Name == TimeVolumeName {
			return conflict("pod already has a volume named %s", v.Name)
		}
	}
	return nil
}

// escape encodes a map key for a JSON pointer (RFC 6901).
func escape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
