#!/usr/bin/env bash
# helm lint --strict of charts/faultline with the locally built helm (which
# has no default Kubernetes version: pass the control plane's), then the
# chart tests (golden renders, schema refusals, server-side dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
assets="$(hack/build-control-plane.sh | tail -1)"
"$assets/helm" lint --strict charts/faultline --kube-version 1.37.2
KUBEBUILDER_ASSETS="$assets" go test -count=1 ./charts/ -run 'Lint|Golden|Refused|Match|DryRun'
