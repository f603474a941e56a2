// Package policy owns the decision whether a pod gets chaos, and how much.
// A Decision is data: inject or not, the admitted FaultSpec, and the reasons,
// each with a stable code (the metric label) and a message naming the rule or
// policy (the admission warning, the Event, `faultline explain`).
//
// The built-in safety rules (safety.go) run before any policy and cannot be
// relaxed by one. Until the ChaosPolicy engine lands, a Limiter seam decides
// the rest; see AdmitRequested and NoPolicy.
package policy
