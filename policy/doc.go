// Package policy owns the decision whether a pod gets chaos, and how much.
// A Decision is data: inject or not, the admitted FaultSpec, and the reasons,
// each with a stable code (the metric label) and a message naming the rule or
// policy (the admission warning, the Event, `faultline explain`).
//
// The built-in safety rules (safety.go) run before any policy and cannot be
// relaxed by one. Then the ChaosPolicies (chaospolicy.go): selectors,
// limits, windows, modes, the most restrictive combination, a verdict cache
// (decisioncache.go); blast radius across replicas with Lease reservations
// (blastradius.go, sweeper.go) and informer-fed group sizes (groups.go).
// The controllers that act on running pods live here too: the kill switch
// (killswitch.go) and abortWhen (abort.go).
package policy
