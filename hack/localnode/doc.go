// Package localnode runs a one-node Kubernetes cluster on this machine from
// binaries built by hack/build-control-plane.sh: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler on the host; containerd 2,
// kubelet, kube-proxy and CoreDNS in a network namespace the run owns, joined
// to the host by one veth pair. Pods get addresses on a bridge inside that
// namespace; the host routes to them, so tests and the API server (calling
// the webhook) reach pods directly.
//
// Everything the node makes on the host is named so that it can be found
// again: Stop removes it, and Start first removes what a crashed or killed
// run left (processes, mounts, cgroups, network namespaces, sysctls).
package localnode
