#!/usr/bin/env bash
# Builds the three binaries into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
for cmd in faultline faultline-webhook faultline-agent; do
  go build -trimpath -ldflags "-X main.version=$version" -o "bin/$cmd" "./cmd/$cmd"
done
echo "built bin/faultline bin/faultline-webhook bin/faultline-agent ($version)"
hack/build-timeshim.sh bin
echo "built bin/libfaultline-time.so$( [[ -f bin/libfaultline-time-musl.so ]] && echo ' bin/libfaultline-time-musl.so')"
