#!/usr/bin/env bash
# helm lint of charts/faultline with the locally built helm.
set -euo pipefail
cd "$(dirname "$0")/.."
assets="$(hack/build-control-plane.sh | tail -1)"
if [[ ! -d charts/faultline ]]; then
  echo "helm-lint: charts/faultline does not exist yet (chart issue)" >&2
  exit 0
fi
"$assets/helm" lint charts/faultline
