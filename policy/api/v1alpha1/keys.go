package v1alpha1

// Labels and annotations that form the opt-in contract (DESIGN.md).
const (
	// LabelNamespaceInjection on a Namespace: "enabled" lets opted-in pods be
	// candidates; "always" makes every pod a candidate unless it opts out.
	LabelNamespaceInjection = "faultline.dev/injection"
	NamespaceInjectionOn    = "enabled"
	NamespaceInjectionAll   = "always"

	// LabelPodInject on a Pod: "true" opts in, "false" opts out.
	LabelPodInject = "faultline.dev/inject"

	// AnnotationFaults holds a FaultSpec as YAML or JSON.
	AnnotationFaults = "faultline.dev/faults"
	// AnnotationProfile names a FaultProfile in the pod's namespace.
	AnnotationProfile = "faultline.dev/profile"
	// AnnotationPaused set to "true" makes the sidecar remove every fault.
	AnnotationPaused = "faultline.dev/paused"
	// AnnotationStatus records what the injector added and which version did it.
	// Its presence is what makes re-injection a no-op.
	AnnotationStatus = "faultline.dev/status"
)

// AnnotationPausedBy names the ChaosPolicy whose kill switch set
// faultline.dev/paused on a pod, so that unpausing that policy lifts exactly
// what it set and never a pause a person set by hand.
const AnnotationPausedBy = "faultline.dev/paused-by"

// AnnotationReservations lists the blast-radius slots ("lease/id") a pod
// holds; the sweeper frees a slot once no pod lists it.
const AnnotationReservations = "faultline.dev/reservations"

// AnnotationDecision is set by the injector on a pod that asked for faults,
// reached it, and was not injected: the decision's code. A pod that asked
// for faults and carries neither this nor faultline.dev/status never reached
// the injector (it was down or slow, and failurePolicy Ignore let the pod
// through).
const AnnotationDecision = "faultline.dev/decision"

// AnnotationMissed marks a pod already reported as created without the
// injector, so that it is reported once.
const AnnotationMissed = "faultline.dev/missed"

// AnnotationAgentProblem marks a pod whose agent could not apply its faults
// at start-up, once that has been reported (a FaultsNotApplied Event).
const AnnotationAgentProblem = "faultline.dev/agent-problem"

// AgentProblemPrefix starts the termination message of an agent init
// container that could not apply every fault but let the pod start (the
// agent fails open); the webhook's reporter turns it into an Event.
const AgentProblemPrefix = "faultline-agent: faults not applied: "

// AnnotationAdmitted records, at admission, the ChaosPolicies that allowed
// the pod (name, UID, generation; JSON). The guard holds the pod to them for
// its whole life: a policy deleted, paused, narrowed or out of its window
// stops the faults it admitted.
const AnnotationAdmitted = "faultline.dev/admitted"

// The webhook–agent contract: the containers the webhook injects, the
// environment it gives them and the paths they share. Both sides import
// these; nothing else spells them. Container env is immutable once the pod
// exists, so what the agent runs can always be read back from the pod.
const (
	InitContainerName  = "faultline-init"
	AgentContainerName = "faultline-agent"

	// EnvSpec carries the admitted FaultSpec as JSON.
	EnvSpec = "FAULTLINE_SPEC"
	// EnvProbePorts lists the kubelet's probe ports ("8080,9090"), and
	// EnvHostIP the node's address they come from (status.hostIP).
	EnvProbePorts = "FAULTLINE_PROBE_PORTS"
	EnvHostIP     = "FAULTLINE_HOST_IP"
	// EnvTimeFile is the time shim's state file (app containers and agent).
	// EnvClockVDSO ("true") lets the agent patch the vDSO clock functions
	// of the processes the time shim does not reach (a policy allowed it).
	EnvClockVDSO = "FAULTLINE_CLOCK_VDSO"
	EnvTimeFile  = "FAULTLINE_TIME_FILE"
	// EnvPodInfoDir is the downward-API directory holding the pod's
	// annotations (the pause), EnvPodName and EnvPodNamespace the pod's.
	EnvPodInfoDir   = "FAULTLINE_PODINFO_DIR"
	EnvPodName      = "FAULTLINE_POD_NAME"
	EnvPodNamespace = "FAULTLINE_POD_NAMESPACE"

	// ShimName is the time shim's file name in the shared volume.
	ShimName = "libfaultline-time.so"
	// DefaultAgentPort serves the agent's /healthz and /metrics.
	DefaultAgentPort = 19091
)

// AsksForFaults: the annotations name faults or a FaultProfile.
func AsksForFaults(annotations map[string]string) bool {
	_, faults := annotations[AnnotationFaults]
	_, profile := annotations[AnnotationProfile]
	return faults || profile
}

// Per-workload settings for the injected agent, on the pod (template). The
// webhook applies them within the bounds its operator set (the chart's
// agent.overrides); outside them the pod is not injected and the reason
// names the annotation, the value and the bound.
const (
	// AnnotationAgentImage replaces the agent's image with one of the
	// images the operator allowed.
	AnnotationAgentImage = "faultline.dev/agent-image"
	// AnnotationAgentCPU and AnnotationAgentMemory are the agent's requests;
	// the -limit ones its limits (Kubernetes quantities).
	AnnotationAgentCPU         = "faultline.dev/agent-cpu"
	AnnotationAgentMemory      = "faultline.dev/agent-memory"
	AnnotationAgentCPULimit    = "faultline.dev/agent-cpu-limit"
	AnnotationAgentMemoryLimit = "faultline.dev/agent-memory-limit"
)
