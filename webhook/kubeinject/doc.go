// Package kubeinject owns offline injection, like `istioctl kube-inject`: it
// reads Pods and workload manifests, finds each pod template, runs the same
// decision and patch builder as the webhook and writes the result. It also
// validates faultline's annotations without injecting.
package kubeinject
