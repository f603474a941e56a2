#!/usr/bin/env bash
# End-to-end scenarios (e2e/, build tag e2e) on the one-node cluster
# (hack/localnode): kubelet, containerd, CNI, kube-proxy and CoreDNS, with
# faultline installed by its Helm chart from the images `make images`
# builds. Needs root. Prints the summary table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [[ $(id -u) != 0 ]]; then
  echo "e2e: needs root (network namespaces, mounts, cgroups): NOT RUN" >&2
  exit 1
fi
assets="$(hack/deps.sh | tail -1)"
hack/images.sh
KUBEBUILDER_ASSETS="$assets" go test -tags e2e -count=1 -v -timeout 40m ./e2e/ "$@" 2>&1 \
  | grep -v '^{' | tee /tmp/faultline-e2e.log | grep -E '^(=== RUN|--- |\s+\S+_test.go|\||ok|FAIL|PASS|node:)'
exit "${PIPESTATUS[0]}"
