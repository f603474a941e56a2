package v1alpha1

// FaultSpec is what a pod asks for. Values stay in the units the user wrote
// (strings such as "100ms", "5%", "1Mbit") so that error messages and the
// normalized spec read like the annotation; Validate checks every value and the
// Parse* helpers in units.go turn them into numbers for the agent.
type FaultSpec struct {
	// Network rules are applied together.
	// +optional
	Network []NetworkRule `json:"network,omitempty"`
	// +optional
	DNS *DNSFault `json:"dns,omitempty"`
	// +optional
	Clock *ClockFault `json:"clock,omitempty"`
	// HTTP faults requests the pod serves or makes (HTTP/1.1 and h2c, so
	// gRPC), through a transparent proxy in the agent.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	HTTP []HTTPFault `json:"http,omitempty"`
	// Schedule turns the faults on and off; absent means always on.
	// +optional
	Schedule *Schedule `json:"schedule,omitempty"`
}

// Direction selects which traffic a network rule affects.
// +kubebuilder:validation:Enum=egress;ingress;both
type Direction string

const (
	DirectionEgress  Direction = "egress"
	DirectionIngress Direction = "ingress"
	DirectionBoth    Direction = "both"
)

// NetworkRule is one set of network faults applied to the traffic it matches.
type NetworkRule struct {
	// Delay added to each matching packet, e.g. "100ms".
	// +optional
	Delay string `json:"delay,omitempty"`
	// Jitter around Delay, e.g. "20ms"; needs delay.
	// +optional
	Jitter string `json:"jitter,omitempty"`
	// Correlation of successive delay values, e.g. "25%".
	// +optional
	Correlation string `json:"correlation,omitempty"`
	// Distribution of the jitter: uniform (default), normal, pareto or
	// paretonormal, as netem's tables; needs jitter.
	// +optional
	// +kubebuilder:validation:Enum=uniform;normal;pareto;paretonormal
	Distribution string `json:"distribution,omitempty"`
	// Loss is the probability of dropping a matching packet, e.g. "5%".
	// +optional
	Loss string `json:"loss,omitempty"`
	// Duplicate delivers this share of matching packets twice.
	// +optional
	Duplicate string `json:"duplicate,omitempty"`
	// Corrupt flips one bit in this share of matching packets.
	// +optional
	Corrupt string `json:"corrupt,omitempty"`
	// Reorder sends this share of delayed packets at once, ahead of the
	// others; needs delay.
	// +optional
	Reorder string `json:"reorder,omitempty"`
	// Gap, as netem's: the first gap-1 packets are always delayed, then
	// each is sent at once with the reorder probability, which starts the
	// count again; 0 or unset reorders any packet. Needs reorder.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	Gap int32 `json:"gap,omitempty"`
	// Bandwidth limits matching traffic, e.g. "1Mbit".
	// +optional
	Bandwidth string `json:"bandwidth,omitempty"`
	// Partition drops everything that matches.
	// +optional
	Partition bool `json:"partition,omitempty"`
	// Reset answers matching TCP connections with a RST instead of dropping
	// silently. On its own it implies a partition for TCP.
	// +optional
	Reset bool `json:"reset,omitempty"`
	// Direction defaults to egress.
	// +optional
	Direction Direction `json:"direction,omitempty"`
	// To limits the rule to destinations: "10.0.0.0/8", "10.1.2.3",
	// "postgres.db.svc:5432", ":53/udp". Empty means all traffic.
	// +optional
	To []string `json:"to,omitempty"`
	// Except lists destinations (same form as To) that are never touched, on
	// top of the built-in exemptions.
	// +optional
	Except []string `json:"except,omitempty"`
}

// DNSFailure is how a disrupted DNS lookup fails.
// +kubebuilder:validation:Enum=servfail;nxdomain;timeout
type DNSFailure string

const (
	DNSServFail DNSFailure = "servfail"
	DNSNXDomain DNSFailure = "nxdomain"
	DNSTimeout  DNSFailure = "timeout"
)

// DNSFault disrupts lookups of matching names.
type DNSFault struct {
	Failure DNSFailure `json:"failure"`
	// Percent of matching lookups that fail; defaults to 100%.
	// +optional
	Percent string `json:"percent,omitempty"`
	// Hosts are DNS names, optionally with a leading "*." wildcard.
	Hosts []string `json:"hosts"`
}

// ClockFault shifts and skews the wall clock seen by dynamically linked
// programs in the pod (through the LD_PRELOAD time shim).
type ClockFault struct {
	// Offset is a signed duration such as "+5m" or "-30s".
	// +optional
	Offset string `json:"offset,omitempty"`
	// Drift is a signed rate such as "200ppm" (fast) or "-50ppm" (slow).
	// +optional
	Drift string `json:"drift,omitempty"`
}

// Schedule switches faults on for For out of every Every, with optional
// random Jitter on each start.
type Schedule struct {
	Every string `json:"every"`
	For   string `json:"for"`
	// +optional
	Jitter string `json:"jitter,omitempty"`
}

// HasNetwork reports whether the spec needs the pod's network namespace
// (and therefore NET_ADMIN): network rules, DNS or HTTP faults.
func (s *FaultSpec) HasNetwork() bool {
	return s != nil && (len(s.Network) > 0 || s.DNS != nil || len(s.HTTP) > 0)
}

// HasClock reports whether the spec needs the time shim.
func (s *FaultSpec) HasClock() bool {
	return s != nil && s.Clock != nil
}

// Kinds lists the fault kinds present, in a stable order, for logs and
// the status annotation.
func (s *FaultSpec) Kinds() []string {
	var k []string
	if s == nil {
		return k
	}
	if len(s.Network) > 0 {
		k = append(k, "network")
	}
	if s.DNS != nil {
		k = append(k, "dns")
	}
	if s.Clock != nil {
		k = append(k, "clock")
	}
	if len(s.HTTP) > 0 {
		k = append(k, "http")
	}
	return k
}
