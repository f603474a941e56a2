#!/usr/bin/env bash
# controller-gen: deepcopy for policy/api/v1alpha1 and the CRDs into
# charts/faultline/crds. With an argument DIR, writes both into DIR instead
# (the staleness test compares that with what is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
version=v0.23.0
source hack/control-plane-dir.sh
tools="$CACHE_ROOT/tools/controller-gen-$version"
if [[ ! -x "$tools/controller-gen" ]]; then
  echo "building controller-gen $version" >&2
  GOBIN="$tools" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$version"
fi
cg="$tools/controller-gen"
out="${1:-}"
if [[ -z "$out" ]]; then
  "$cg" object paths=./policy/api/... 
  "$cg" crd paths=./policy/api/... output:crd:artifacts:config=charts/faultline/crds
else
  mkdir -p "$out/crds"
  "$cg" object paths=./policy/api/... output:object:dir="$out"
  "$cg" crd paths=./policy/api/... output:crd:artifacts:config="$out/crds"
fi
