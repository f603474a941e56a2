package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
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
	// ClockMethod says how clock faults reach the pod's programs and why.
	ClockMethod string   `json:"clockMethod,omitempty"`
	Containers  []string `json:"containers,omitempty"`
	Volumes     []string `json:"volumes"`
}

// Clock is how clock faults reach the pod's programs (policy.Decision's
// ClockVDSO and ClockMethod).
type Clock struct {
	// VDSO: the agent patches static programs' vDSO (SYS_PTRACE,
	// shareProcessNamespace) besides the shim.
	VDSO   bool
	Method string
}

// Patch is the result of building an injection.
type Patch struct {
	Ops []jsonpatch.JsonPatchOperation
	// Warnings are things the owner should know although injection went ahead.
	Warnings []string
}

// JSON encodes the operations as an RFC 6902 document. Values rendered in
// advance (json.RawMessage) are copied as they are: encoding/json would
// re-validate and re-compact them at every level, which was a third of the
// admission cost.
func (p *Patch) JSON() ([]byte, error) {
	buf := make([]byte, 0, 4096)
	buf = append(buf, '[')
	for i, op := range p.Ops {
		if i > 0 {
			buf = append(buf, ',')
		}
		path, err := json.Marshal(op.Path)
		if err != nil {
			return nil, err
		}
		buf = append(buf, `{"op":"`...)
		buf = append(buf, op.Operation...)
		buf = append(buf, `","path":`...)
		buf = append(buf, path...)
		buf = append(buf, `,"value":`...)
		if raw, ok := op.Value.(json.RawMessage); ok {
			buf = append(buf, raw...)
		} else {
			v, err := json.Marshal(op.Value)
			if err != nil {
				return nil, err
			}
			buf = append(buf, v...)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']'), nil
}

// Injector builds patches for one Config. The containers and volumes it
// adds depend only on the admitted spec and the probe ports, so their JSON is
// rendered once per distinct pair and reused for every replica.
type Injector struct {
	cfg   Config
	cache *lru.Cache[string, *rendered]
}

// rendered is the pre-encoded JSON of what one spec injects.
type rendered struct {
	volumes []json.RawMessage
	inits   []json.RawMessage
	agent   json.RawMessage // classic mode: appended to containers
	status  string
}

// NewInjector returns an injector for cfg with a bounded render cache.
func NewInjector(cfg Config) *Injector {
	c, _ := lru.New[string, *rendered](256) // size is a positive constant: cannot fail
	return &Injector{cfg: cfg, cache: c}
}

// Config is the injector's configuration.
func (in *Injector) Config() Config { return in.cfg }

// BuildPatch returns the JSON-patch operations that inject the admitted spec
// into a pod. prefix locates the pod template in the object being patched:
// "" for a Pod, "/spec/template" for a Deployment, and so on. A conflict with
// what the pod already has is returned as a reason, never papered over.
func (in *Injector) BuildPatch(meta *metav1.ObjectMeta, pod *corev1.PodSpec, prefix string, spec *v1alpha1.FaultSpec, clock Clock) (*Patch, *policy.Reason) {
	cfg, problems := in.cfg.forWorkload(meta.Annotations)
	if problems != nil {
		return nil, overrideReason(problems)
	}
	if r := conflicts(pod, cfg); r != nil {
		return nil, r
	}
	r, err := in.render(cfg, spec, ProbePorts(pod), clock)
	if err != nil {
		return nil, &policy.Reason{Code: CodeConflict, Message: "encoding the injected containers: " + err.Error(), Notify: true}
	}
	p := &Patch{}
	add := func(path string, v any) {
		p.Ops = append(p.Ops, jsonpatch.NewOperation("add", prefix+path, v))
	}

	if meta.Annotations == nil {
		add("/metadata/annotations", map[string]string{v1alpha1.AnnotationStatus: r.status})
	} else {
		add("/metadata/annotations/"+escape(v1alpha1.AnnotationStatus), r.status)
	}

	if pod.Volumes == nil {
		add("/spec/volumes", rawList(r.volumes))
	} else {
		for _, v := range r.volumes {
			add("/spec/volumes/-", v)
		}
	}

	// faultline-init goes first so that its rules exist before any other
	// init container or the app opens a connection.
	if pod.InitContainers == nil {
		add("/spec/initContainers", rawList(r.inits))
	} else {
		for i, c := range r.inits {
			add("/spec/initContainers/"+strconv.Itoa(i), c)
		}
	}
	if r.agent != nil {
		add("/spec/containers/-", r.agent)
	}
	// The agent must see the app's processes to patch their vDSO.
	if clock.VDSO && spec.HasClock() && pod.ShareProcessNamespace == nil {
		add("/spec/shareProcessNamespace", true)
	}

	if spec.HasClock() {
		for i := range pod.Containers {
			p.Warnings = append(p.Warnings, preloadOps(&pod.Containers[i], prefix+"/spec/containers/"+strconv.Itoa(i), &p.Ops)...)
		}
	}
	return p, nil
}

// render builds what is injected for cfg (the injector's, with the
// workload's overrides) and spec, cached by everything it depends on.
func (in *Injector) render(cfg Config, spec *v1alpha1.FaultSpec, probes []int32, clock Clock) (*rendered, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	key := string(specJSON) + "|" + fmt.Sprint(probes) + "|" + cfg.AgentImage + "|" + cfg.Resources.String() + "|" + fmt.Sprint(clock)
	if r, ok := in.cache.Get(key); ok {
		return r, nil
	}
	volumes := []corev1.Volume{PodInfoVolume()}
	if spec.HasClock() {
		volumes = append(volumes, TimeVolume())
	}
	status := Status{Version: cfg.Version, Faults: spec.Kinds(), Sidecar: string(cfg.SidecarMode), ClockMethod: clock.Method}
	r := &rendered{}
	for _, v := range volumes {
		status.Volumes = append(status.Volumes, v.Name)
		js, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		r.volumes = append(r.volumes, js)
	}
	inits := []corev1.Container{InitContainer(cfg, spec, probes, clock)}
	agent := AgentContainer(cfg, spec, probes, clock)
	if cfg.SidecarMode == SidecarNative {
		inits = append(inits, agent)
	} else {
		status.Containers = []string{agent.Name}
		if r.agent, err = json.Marshal(agent); err != nil {
			return nil, err
		}
	}
	for _, c := range inits {
		status.InitContainers = append(status.InitContainers, c.Name)
		js, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		r.inits = append(r.inits, js)
	}
	st, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	r.status = string(st)
	in.cache.Add(key, r)
	return r, nil
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
		// "add" sets an object member whether or not it exists: an
		// LD_PRELOAD with an empty value has no "value" key to replace
		// (found by FuzzHandle).
		*ops = append(*ops, jsonpatch.NewOperation("add", path+"/env/"+strconv.Itoa(idx)+"/value", v))
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
	if len(pod.Containers) == 0 {
		// The API server refuses such a pod anyway; a patch could not even
		// be applied (there is no spec to add volumes to).
		return conflict("pod has no containers: nothing to inject into")
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
	// A classic sidecar is an ordinary container that runs until the pod
	// stops: in a pod meant to run to completion (a Job's) it would keep
	// the pod, and the Job, from ever finishing. Native sidecars stop with
	// the app.
	if cfg.SidecarMode == SidecarClassic && pod.RestartPolicy != "" && pod.RestartPolicy != corev1.RestartPolicyAlways {
		return conflict("restartPolicy %s: the pod runs to completion (a Job), and a classic sidecar never exits, so it would never complete; use the native sidecar mode (Kubernetes >= 1.29)", pod.RestartPolicy)
	}
	return nil
}

func rawList(items []json.RawMessage) json.RawMessage {
	out := []byte{'['}
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']')
}

// escape encodes a map key for a JSON pointer (RFC 6901).
func escape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
