#!/usr/bin/env bash
# Builds the LD_PRELOAD time shim: bin/libfaultline-time.so (glibc) and,
# when musl-gcc exists, bin/libfaultline-time-musl.so. OUT overrides bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bin}"
mkdir -p "$out"
src=sidecar/timeshim/faultline_time.c
flags=(-O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Werror -std=gnu11)
${CC:-cc} "${flags[@]}" -o "$out/libfaultline-time.so" "$src" -ldl
if command -v musl-gcc >/dev/null; then
  musl-gcc "${flags[@]}" -o "$out/libfaultline-time-musl.so" "$src"
fi
