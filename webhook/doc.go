// Package webhook owns admission: it decodes a pod, asks the policy engine
// for a decision, turns an admitted FaultSpec into explicit JSON-patch
// operations (the init container, the agent sidecar, volumes, LD_PRELOAD) and
// responds. It never blocks a pod: every outcome is an allowed response, with
// a patch when injected and warnings when the owner should know why not.
//
// The injected containers are built by Go functions (containers.go), never
// templates, so there is exactly one place each field comes from.
package webhook
