#!/usr/bin/env bash
# End-to-end scenarios (e2e/, build tag e2e): the local control plane,
# faultline-webhook, and the node simulator running mutated pods in network
# namespaces. Needs root. Prints the summary table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
if [[ $(id -u) != 0 ]]; then
  echo "e2e: needs root (network namespaces, iptables, tc): NOT RUN" >&2
  exit 1
fi
assets="$(hack/build-control-plane.sh | tail -1)"
KUBEBUILDER_ASSETS="$assets" go test -tags e2e -count=1 -v -timeout 20m ./e2e/ "$@" 2>&1 \
  | grep -v '^{' | tee /tmp/faultline-e2e.log | grep -E '^(=== RUN|--- |\s+\S+_test.go|\||ok|FAIL|PASS)'
exit "${PIPESTATUS[0]}"
