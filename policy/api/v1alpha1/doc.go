// Package v1alpha1 owns faultline's public contract: the well-known labels and
// annotations, the FaultSpec that pods, FaultProfiles and the agent share, and
// its strict parser. It is a leaf: it imports nothing else from faultline, so
// the webhook, the policy engine and the sidecar agent can all depend on it.
//
// +groupName=faultline.dev
package v1alpha1
