#!/usr/bin/env bash
# `make test`: what it needs (hack/deps.sh: Debian packages, the cluster
# binaries), lint, every Go test (unit, golden, fuzz seed corpora, real
# network namespaces, a real kube-apiserver + etcd), then a `make run` smoke
# test on the real node: an injected pod Running with a measured fault, and
# nothing left on the host afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
KUBEBUILDER_ASSETS="$(hack/deps.sh | tail -1)"
export KUBEBUILDER_ASSETS
hack/lint.sh
# -p 1: the fault-accuracy tests (delay within 1 ms, bandwidth within 5%)
# measure real time and must not share the two cores with other packages.
go test -count=1 -p 1 ./...
hack/build.sh
hack/images.sh
echo "== make run smoke test (one-node cluster)"
if [[ $(id -u) != 0 ]]; then
  echo "make run smoke test: SKIPPED LOUDLY: the node needs root" >&2
  exit 1
fi
state="$(mktemp -d)"
out="$(go run ./hack/run --exit --state-dir "$state/run")"
echo "$out"
grep -q "injected by faultline" <<<"$out" || { echo "make run did not show an injected pod" >&2; exit 1; }
grep -q "TCP connect" <<<"$out" || { echo "make run did not measure the delay" >&2; exit 1; }
grep -q "checkout's clock" <<<"$out" || { echo "make run did not measure the clock" >&2; exit 1; }
if ip link show flhost0 >/dev/null 2>&1 || [[ "$(ip netns list)" == *faultline-node* ]] || [[ -e /run/faultline-node ]]; then
  echo "make run left the node's network or record behind" >&2
  exit 1
fi
echo "== make run after a kill -9: the next run (here --clean) removes what it left"
sysctls() { sysctl -n kernel.panic kernel.panic_on_oops vm.overcommit_memory | tr '\n' ' '; }
before="$(sysctls)"
go build -o "$state/run-bin" ./hack/run
"$state/run-bin" --state-dir "$state/crash" >"$state/crash.out" 2>&1 &
pid=$!
for _ in $(seq 1 180); do grep -q "measuring" "$state/crash.out" && break; sleep 1; done
grep -q "measuring" "$state/crash.out" || { cat "$state/crash.out"; kill -9 "$pid"; echo "the run to be killed never got going" >&2; exit 1; }
kill -9 "$pid"
sleep 1
[[ "$(ip netns list)" == *faultline-node* ]] || { echo "kill -9 left nothing to clean: the test proves nothing" >&2; exit 1; }
"$state/run-bin" --clean
left=()
ip link show flhost0 >/dev/null 2>&1 && left+=("link flhost0")
[[ "$(ip netns list)" == *faultline-node* ]] && left+=("netns faultline-node")
[[ -e /run/faultline-node ]] && left+=("/run/faultline-node")
compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null && left+=("kubepods cgroups")
grep -q "$state/crash" /proc/self/mountinfo && left+=("mounts under $state/crash")
pgrep -f "echo-server|http.server" >/dev/null && left+=("pod processes")
compgen -G "/var/lib/cni/results/faultline-*" >/dev/null && left+=("CNI results")
[[ "$(sysctls)" == "$before" ]] || left+=("sysctls $(sysctls), were $before")
if ((${#left[@]})); then
  echo "after kill -9 and a clean: left ${left[*]}" >&2
  exit 1
fi
echo "kill -9 mid-run: everything removed by the next run's clean-up"
rm -rf "$state"
echo "all tests passed"
