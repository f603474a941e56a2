#!/usr/bin/env bash
# Where hack/build-control-plane.sh keeps the binaries, keyed by version.
# The node's binaries (kubelet, kube-proxy, containerd, CoreDNS) are in the
# same directory: one key, one cache.
# Run it to print the directory (without building); source it to get the
# variables.
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CACHE_ROOT="${FAULTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}"
ASSETS="$CACHE_ROOT/control-plane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_containerd-${CONTAINERD_VERSION}_coredns-${COREDNS_VERSION}"
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "$ASSETS"
fi
