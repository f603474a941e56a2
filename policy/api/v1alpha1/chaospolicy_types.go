package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyMode says what happens when a pod breaks a policy.
// +kubebuilder:validation:Enum=Enforce;Audit;DryRun
type PolicyMode string

const (
	// ModeEnforce admits a pod that breaks a limit or window without chaos.
	ModeEnforce PolicyMode = "Enforce"
	// ModeAudit injects anyway, with a warning saying what was broken.
	ModeAudit PolicyMode = "Audit"
	// ModeDryRun never injects; it warns what would have happened.
	ModeDryRun PolicyMode = "DryRun"
)

// Limits bound each fault kind. A kind without a limit is not allowed:
// platform teams list what they permit, and nothing else gets in.
type Limits struct {
	// MaxDelay allows delay up to this duration, e.g. "200ms".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+(ns|us|µs|ms|s|m|h)$`
	MaxDelay string `json:"maxDelay,omitempty"`
	// MaxJitter allows jitter up to this duration.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+(ns|us|µs|ms|s|m|h)$`
	MaxJitter string `json:"maxJitter,omitempty"`
	// MaxLoss allows packet loss up to this percentage, e.g. "5%".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+%$`
	MaxLoss string `json:"maxLoss,omitempty"`
	// MinBandwidth allows bandwidth limits no tighter than this, e.g. "1Mbit".
	// +optional
	MinBandwidth string `json:"minBandwidth,omitempty"`
	// Partition allows partitions.
	// +optional
	Partition bool `json:"partition,omitempty"`
	// Reset allows TCP resets.
	// +optional
	Reset bool `json:"reset,omitempty"`
	// MaxDNSPercent allows DNS failures for up to this share of lookups.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+%$`
	MaxDNSPercent string `json:"maxDNSPercent,omitempty"`
	// MaxClockOffset allows clock offsets up to this magnitude, e.g. "10m".
	// +optional
	MaxClockOffset string `json:"maxClockOffset,omitempty"`
	// MaxClockDrift allows drift up to this magnitude, e.g. "500ppm".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+ppm$`
	MaxClockDrift string `json:"maxClockDrift,omitempty"`
	// ClockVDSO lets clock faults reach statically linked programs (most
	// Go binaries), which the LD_PRELOAD shim cannot, by patching their
	// vDSO clock functions: the pod gets shareProcessNamespace and the
	// agent CAP_SYS_PTRACE (refused where Pod Security is baseline or
	// restricted). Every policy that selects the pod must allow it.
	// +optional
	ClockVDSO bool `json:"clockVDSO,omitempty"`
	// HTTP allows HTTP and gRPC faults within these bounds; absent allows
	// none.
	// +optional
	HTTP *HTTPLimits `json:"http,omitempty"`
}

// HTTPLimits bound HTTP and gRPC faults. As with the other limits, a fault
// without its bound is not allowed: no maxDelay, no HTTP delay.
type HTTPLimits struct {
	// Ports are the only ports HTTP faults may read: an inbound rule's
	// port, an outbound rule's destination ports (a destination without a
	// port is every port). Empty allows any port.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	Ports []int32 `json:"ports,omitempty"`
	// MaxDelay allows HTTP delays up to this duration, e.g. "2s".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+(ns|us|µs|ms|s|m|h)$`
	MaxDelay string `json:"maxDelay,omitempty"`
	// MaxAbortPercent allows aborting up to this share of matching
	// requests, e.g. "10%".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+%$`
	MaxAbortPercent string `json:"maxAbortPercent,omitempty"`
}

// Window is a weekly time range during which chaos is allowed.
// +kubebuilder:validation:XValidation:rule="self.start != self.end",message="start and end must differ"
type Window struct {
	// Days are three-letter English day names; empty means every day.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:validation:items:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
	Days []string `json:"days,omitempty"`
	// Start is HH:MM, inclusive.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	// +kubebuilder:validation:MaxLength=5
	Start string `json:"start"`
	// End is HH:MM, exclusive; an end before start wraps past midnight.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	// +kubebuilder:validation:MaxLength=5
	End string `json:"end"`
	// TimeZone is an IANA name such as Europe/Berlin; default UTC.
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// BlastRadius caps how many pods get chaos at once.
type BlastRadius struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxPods *int32 `json:"maxPods,omitempty"`
	// MaxPercent of each group's pods, e.g. "30%".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+%$`
	MaxPercent string `json:"maxPercent,omitempty"`
	// GroupBy label keys; pods are grouped by namespace plus these labels.
	// +optional
	GroupBy []string `json:"groupBy,omitempty"`
}

// AbortCondition pauses the policy when a Prometheus query crosses a
// threshold for a duration.
type AbortCondition struct {
	PrometheusURL string `json:"prometheusURL"`
	Query         string `json:"query"`
	// Threshold is compared with the query's first sample: above aborts.
	// +kubebuilder:validation:Pattern=`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`
	Threshold string `json:"threshold"`
	// For is how long the threshold must be crossed, e.g. "1m".
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9.]+(ns|us|µs|ms|s|m|h)$`
	For string `json:"for,omitempty"`
}

// ChaosPolicySpec is what a platform team allows.
type ChaosPolicySpec struct {
	// NamespaceSelector picks namespaces; empty selects all.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSelector picks pods within them; empty selects all.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// +kubebuilder:default=Enforce
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`
	// Paused is the kill switch: no new injections, and injected pods in
	// scope are told to pause.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// +optional
	Limits Limits `json:"limits,omitempty"`
	// +optional
	BlastRadius *BlastRadius `json:"blastRadius,omitempty"`
	// Windows when chaos is allowed; empty means always.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Windows []Window `json:"windows,omitempty"`
	// DefaultFaults are injected into pods of always-on namespaces that ask
	// for nothing themselves.
	// +optional
	DefaultFaults *FaultSpec `json:"defaultFaults,omitempty"`
	// +optional
	AbortWhen *AbortCondition `json:"abortWhen,omitempty"`
}

// ChaosPolicyStatus reports what the policy is doing.
type ChaosPolicyStatus struct {
	// +optional
	InjectedPods int32 `json:"injectedPods,omitempty"`
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChaosPolicy bounds chaos for the namespaces and pods it selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cpol
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`
// +kubebuilder:printcolumn:name="Injected",type=integer,JSONPath=`.status.injectedPods`
type ChaosPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ChaosPolicySpec   `json:"spec,omitempty"`
	Status ChaosPolicyStatus `json:"status,omitempty"`
}

// ChaosPolicyList is a list of ChaosPolicies.
// +kubebuilder:object:root=true
type ChaosPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChaosPolicy `json:"items"`
}

// FaultProfile is a named FaultSpec pods refer to with faultline.dev/profile.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=fprof
type FaultProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec FaultSpec `json:"spec,omitempty"`
}

// FaultProfileList is a list of FaultProfiles.
// +kubebuilder:object:root=true
type FaultProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FaultProfile `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ChaosPolicy{}, &ChaosPolicyList{}, &FaultProfile{}, &FaultProfileList{})
}
