#!/usr/bin/env bash
# make run: install or check what is missing (hack/deps.sh), build the
# images, then start the one-node cluster with faultline (hack/run). Root.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
assets="$(hack/deps.sh | tail -1)"
hack/images.sh >/dev/null
exec env KUBEBUILDER_ASSETS="$assets" go run ./hack/run "$@"
