#!/usr/bin/env bash
# Admission benchmark (injector vs a decode/re-encode baseline, same run),
# decision cost by tracked pods, time shim and (as root) network faults.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
go test ./webhook/ -run '^$' -bench BenchmarkAdmission -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-3}" "$@"
echo
go test ./policy/ -run '^$' -bench BenchmarkDecision -count "${COUNT:-3}"
echo
go run ./hack/bench-timeshim

echo
if [[ $(id -u) == 0 ]]; then go run ./hack/bench-netfault --idle "${IDLE:-60s}"; else echo "bench-netfault skipped: needs root" >&2; fi
