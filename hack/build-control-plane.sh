#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# helm and the node (kubelet, kube-proxy, containerd 2 with its runc shim and
# ctr, CoreDNS) from Go module sources, because nothing can be downloaded here but
# modules. Binaries are cached outside the checkout, keyed by version, so a
# second run costs nothing. Prints the assets directory on its last line.
#
# Why wrapper modules: k8s.io/kubernetes and etcd carry replace directives
# (staging modules, local paths), which `go install pkg@version` refuses.
set -euo pipefail

# Versions, cache root and ASSETS come from one place.
source "$(dirname "${BASH_SOURCE[0]}")/control-plane-dir.sh"
WORK="$CACHE_ROOT/wrappers"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { printf '[control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
containerd_cmds=(containerd containerd-shim-runc-v2 ctr)
want=(etcd "${k8s_cmds[@]}" helm "${containerd_cmds[@]}" coredns)
missing=()
for b in "${want[@]}"; do [[ -x "$ASSETS/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "cached: $ASSETS"
  echo "$ASSETS"
  exit 0
fi
log "building ${missing[*]} into $ASSETS (cold: several minutes, ~3 GB RAM for the apiserver link)"
mkdir -p "$ASSETS" "$WORK"

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

build_etcd() {
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// Command etcd is a thin wrapper around etcdmain so the server builds from
// the module proxy without the etcd repository's replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$dir"
    [[ -f go.mod ]] || go mod init faultline.local/etcd-wrapper >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go mod tidy
    go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" -o "$ASSETS/etcd" .
  )
}

build_kubernetes() {
  local dir="$WORK/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    if [[ ! -f go.mod ]]; then
      go mod init faultline.local/kubernetes-wrapper >/dev/null 2>&1
      local modfile
      modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
      [[ -f "$modfile" ]] || { log "cannot find go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
      local staging_version="v0.${K8S_VERSION#v1.}"
      # Every `k8s.io/X => ./staging/...` in kubernetes' own go.mod becomes a
      # replace to the published module of the matching v0 version.
      {
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
        echo ")"
      } >>go.mod
    fi
    log "resolving kubernetes $K8S_VERSION dependencies"
    go get k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubectl/pkg/cmd \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy >/dev/null
    local major minor
    major="$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v)"
    minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
    local ld=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitCommit=module-$K8S_VERSION -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
    done
    for cmd in "${k8s_cmds[@]}"; do
      [[ -x "$ASSETS/$cmd" ]] && continue
      log "building $cmd"
      local pkg="k8s.io/kubernetes/cmd/$cmd"
      go build -trimpath -ldflags "-s -w $ld" -o "$ASSETS/$cmd" "$pkg"
    done
  )
}

build_helm() {
  log "building helm $HELM_VERSION"
  local tmp="$WORK/helm-bin"
  mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$ASSETS/helm"
}

# containerd 2.x: the runtime Kubernetes supports from 1.36 on (Debian's 1.6
# only works through a kubelet fallback that is being removed). Its module has
# no replace directives, so `go install` builds it; CGO_ENABLED=0 leaves out
# the btrfs snapshotter, which the node does not use (overlayfs).
build_containerd() {
  local tmp="$WORK/containerd-bin"
  mkdir -p "$tmp"
  for cmd in "${containerd_cmds[@]}"; do
    [[ -x "$ASSETS/$cmd" ]] && continue
    log "building $cmd $CONTAINERD_VERSION"
    GOBIN="$tmp" go install -trimpath -tags no_btrfs \
      -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION"
    mv "$tmp/$cmd" "$ASSETS/$cmd"
  done
}

# CoreDNS: the cluster DNS, so pods resolve Service names as in any cluster.
build_coredns() {
  log "building coredns $COREDNS_VERSION"
  local tmp="$WORK/coredns-bin"
  mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$tmp/coredns" "$ASSETS/coredns"
}

[[ -x "$ASSETS/etcd" ]] || { log "building etcd $ETCD_VERSION"; build_etcd; }
need_k8s=0
for b in "${k8s_cmds[@]}"; do [[ -x "$ASSETS/$b" ]] || need_k8s=1; done
[[ $need_k8s -eq 0 ]] || build_kubernetes
[[ -x "$ASSETS/helm" ]] || build_helm
need_containerd=0
for b in "${containerd_cmds[@]}"; do [[ -x "$ASSETS/$b" ]] || need_containerd=1; done
[[ $need_containerd -eq 0 ]] || build_containerd
[[ -x "$ASSETS/coredns" ]] || build_coredns

"$ASSETS/kube-apiserver" --version >&2
# sed, not head: head exits early and, under pipefail, SIGPIPE (141) fails
# the whole build on a cold machine.
"$ASSETS/etcd" --version | sed -n 1p >&2
log "done: $ASSETS"
echo "$ASSETS"
