#!/usr/bin/env bash
# make images: faultline's images and the e2e test images as OCI tarballs in
# bin/images (listed in bin/images/images.json). `make run` and `make e2e`
# import them into the node's containerd. Needs root (mmdebstrap unpacks the
# Debian bases as root), gcc, libc6-dev, musl-tools and mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
source hack/control-plane-dir.sh
export K8S_VERSION FAULTLINE_CACHE="$CACHE_ROOT"
version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
exec go run ./hack/images -out bin/images -version "$version" "$@"
