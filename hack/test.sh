#!/usr/bin/env bash
# `make test`: lint, then every Go test (unit, golden, fuzz seed corpora and
# the tests against a real kube-apiserver + etcd), then a `make run` smoke
# test that checks an example pod really got injected.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
KUBEBUILDER_ASSETS="$(hack/build-control-plane.sh | tail -1)"
export KUBEBUILDER_ASSETS
hack/lint.sh
# -p 1: the fault-accuracy tests (delay within 1 ms, bandwidth within 5%)
# measure real time and must not share the two cores with other packages.
go test -count=1 -p 1 ./...
hack/build.sh
echo "== make run smoke test"
out="$(go run ./hack/run --exit --state-dir "$(mktemp -d)")"
echo "$out"
grep -q "injected by faultline" <<<"$out" || { echo "make run did not show an injected pod" >&2; exit 1; }
grep -q "did not opt in" <<<"$out" || { echo "make run did not show the non-opted-in pod" >&2; exit 1; }
echo "all tests passed"
