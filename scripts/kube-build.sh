#!/usr/bin/env bash
# Builds the Kubernetes sandbox (e2e/kube) into <target>/kube/bin:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  from k8s.io/kubernetes
#   helm                                                              from helm.sh/helm/v4
#   etcd (etcd's embed package), sandbox (our orchestrator)           from e2e/kube/cmd
# Versions come from e2e/kube/go.mod. Idempotent: when nothing that goes into
# the binaries changed since the last build (stamp file), it does nothing; else
# `go build` reuses Go's build cache, so only a cold cache compiles Kubernetes.
# CARGO_TARGET_DIR is honoured like the rest of the repo's scripts.
set -euo pipefail
# CGO off, as in the upstream release builds; kube-smoke.sh and kube-scenarios.sh vet and
# test with it off too, so they reuse these compiled packages instead of building
# Kubernetes a second time with cgo.
export CGO_ENABLED=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/kube/bin"
MOD="$ROOT/e2e/kube"
STAMP="$BIN/.build-stamp"
SELF="$ROOT/scripts/kube-build.sh"

if ! command -v go >/dev/null 2>&1; then
    echo "kube-build: go not found (Go 1.26 is needed)" >&2
    exit 1
fi
cd "$MOD"

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl helm etcd sandbox node-agent coredns)
PACKAGES=(
    k8s.io/kubernetes/cmd/kube-apiserver
    k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kube-scheduler
    k8s.io/kubernetes/cmd/kube-proxy
    k8s.io/kubernetes/cmd/kubectl
    helm.sh/helm/v4/cmd/helm
    ./cmd/etcd
    ./cmd/sandbox
    ./cmd/node-agent
)

# Everything the binaries depend on: Go itself, this script, go.mod/go.sum
# and our own sources (upstream code is fixed by go.sum).
stamp() {
    {
        go version
        sha256sum "$SELF" go.mod go.sum coredns/go.mod coredns/go.sum
        find . -name '*.go' -not -name '*_test.go' | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -d' ' -f1
}

want="$(stamp)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    missing=0
    for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || missing=1; done
    if [ "$missing" -eq 0 ]; then
        echo "kube-build: $BIN is up to date"
        exit 0
    fi
fi

kube_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
helm_version="$(go list -m -f '{{.Version}}' helm.sh/helm/v4)"
major="${kube_version#v}"; major="${major%%.*}"
minor="${kube_version#v*.}"; minor="${minor%%.*}"

# The version stamps the upstream Makefiles set; without them the servers
# report v0.0.0-master and charts' kubeVersion constraints fail. -X of a
# variable a binary does not link is ignored, so one set serves all.
# -s -w as in the upstream release builds: no symbol tables, half the size.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
ldflags+=" -X helm.sh/helm/v4/internal/version.version=$helm_version"

mkdir -p "$BIN"
echo "kube-build: building Kubernetes $kube_version, Helm $helm_version and the sandbox into $BIN"
start=$SECONDS
# nice: the machine is shared.
nice -n 15 go build -ldflags "$ldflags" -o "$BIN/" "${PACKAGES[@]}"
# CoreDNS (the cluster DNS, run as a pod) is a module of its own so its
# dependencies stay out of the Kubernetes components' build.
(cd coredns && nice -n 15 go build -ldflags "-s -w" -o "$BIN/" .)
echo "$want" >"$STAMP"
echo "kube-build: done in $((SECONDS - start))s"
