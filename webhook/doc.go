// Package webhook owns admission: it decodes a pod, asks the policy engine
// for a decision, turns an admitted FaultSpec into explicit JSON-patch
// operations (the init container, the agent sidecar, volumes, LD_PRELOAD) and
// responds. It never blocks a pod: every outcome is an allowed response, with
// a patch when injected and warnings when the owner should know why not.
//
// It also owns what the pod's owner hears of the decision: Events once the
// pod exists, and on its workload at admission (events.go); the webhook
// configurations (webhookconfig.go, the
// same settings the Helm chart renders); the validating webhook for workload
// templates; and the readers that connect the policy engine to the API
// (namespaces, policies, profiles, owners).
//
// The injected containers are built by Go functions (containers.go), never
// templates, so there is exactly one place each field comes from.
package webhook
