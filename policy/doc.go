// Package policy owns the decision whether a pod gets chaos, and how much,
// and whether a running pod may keep it. It is pure: no API client, no
// metrics registered at import; what it reads comes through small
// interfaces (PolicySource, Reserver, GroupSizer) that policy/controllers
// and the webhook implement.
//
// A Decision is data: inject or not, the admitted FaultSpec, and the reasons,
// each with a stable code (the metric label) and a message naming the rule or
// policy (the admission warning, the Event, `faultline explain`).
//
// The built-in safety rules (safety.go) run before any policy and cannot be
// relaxed by one. Then the ChaosPolicies (chaospolicy.go): selectors,
// limits and their combination (limits.go), windows (window.go), modes, a
// verdict cache (decisioncache.go), Pod Security (podsecurity.go). Blast
// radius is taken last (blastradius.go, Engine.Reserve), sized by an
// informer-fed counter (groups.go). Hold (hold.go) judges a running pod
// against the same policies for its whole life; record.go reads and writes
// the admission record it judges from.
package policy
