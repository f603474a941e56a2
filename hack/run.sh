#!/usr/bin/env bash
# make run: build what is missing, then start the local cluster (hack/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
assets="$(hack/build-control-plane.sh | tail -1)"
hack/build.sh
exec env KUBEBUILDER_ASSETS="$assets" go run ./hack/run "$@"
