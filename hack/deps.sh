#!/usr/bin/env bash
# What `make test`, `make run` and `make e2e` need on a fresh Debian
# bookworm machine, installed when missing (as root) or named with the
# command to run: Debian packages, then the cluster binaries built from Go
# module sources (hack/build-control-plane.sh, cached). Prints the assets
# directory on its last line. Idempotent and quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

# make, git, gcc, libc6-dev (libc.a: pause and the static probes), python3,
# musl-tools (the musl time shim and test app): builds and tests.
# iptables, iproute2: the network-fault tests; prometheus: the abortWhen test.
# runc, containernetworking-plugins: the node's runtime and pod network;
# mmdebstrap: the Debian bases of the images. libfaketime: the shim
# benchmark's baseline. util-linux (nsenter) and kmod are in every Debian.
need=(make git gcc libc6-dev python3 musl-tools iptables iproute2 prometheus runc containernetworking-plugins mmdebstrap libfaketime)
missing=()
for p in "${need[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run: sudo apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
  echo "== installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
hack/build-control-plane.sh
