#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (go test allows one target per run).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
t="${FUZZTIME:-30s}"
go test ./policy/api/v1alpha1/ -run '^$' -fuzz '^FuzzParseFaultSpec$' -fuzztime "$t"
go test ./webhook/kubeinject/ -run '^$' -fuzz '^FuzzRead$' -fuzztime "$t"
go test ./sidecar/dnsfault/ -run '^$' -fuzz '^FuzzIntercept$' -fuzztime "$t"
go test ./webhook/ -run '^$' -fuzz '^FuzzHandle$' -fuzztime "$t"
go test ./sidecar/vdso/ -run '^$' -fuzz '^FuzzSymbols$' -fuzztime "$t"
go test ./sidecar/httpfault/ -run '^$' -fuzz '^FuzzProxyConnection$' -fuzztime "$t"
