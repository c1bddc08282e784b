#!/usr/bin/env bash
# Kind end-to-end suite for Strom's operator: creates a throw-away kind cluster, builds
# the image and loads it, then runs the operator's scenario suite (e2e/kube/scenarios,
# the same tests scripts/kube-scenarios.sh runs on the local sandbox) with the kind
# cluster's kubeconfig.
#
#   bash e2e/kind/run.sh
#   bash e2e/kind/run.sh -run 'TestTour|TestGitOps'     # arguments go to `go test`
#
# Needs a Docker engine, kind, helm, kubectl and Go. Without them it prints
# "kind e2e skipped: <why>" and exits 0 (so the test command passes on machines that
# cannot run containers); STROM_KIND_REQUIRED=1 makes that a failure (CI).
#
# Environment:
#   STROM_KIND_REQUIRED=1     fail instead of skipping when a tool is missing
#   STROM_KIND_KEEP=1         keep the kind cluster afterwards (prints how to reach it)
#   STROM_KIND_NODE_IMAGE     kind node image (default: kind's own)
#   STROM_KIND_SKIP_BUILD=1   do not docker build; both images must exist locally
#   STROM_KIND_SUITE_TIMEOUT  go test's timeout for the whole suite (default 40m; the
#                             former STROM_KIND_TIMEOUT, a Ready timeout, is not used)
#
# The image is built as ghcr.io/strom-dev/strom:<chart appVersion>, the tag the chart's
# defaults and deploy/operator.yaml name, so the README's `helm install` and
# `kubectl apply -k deploy/` run unchanged (pullPolicy IfNotPresent uses the loaded one).
# The tool images the scenarios run as pods (edenhill/kcat:1.7.1, apache/kafka:4.4.0,
# python:3.13-slim) are pulled by the kind node; the load pod's image is built from
# e2e/kind/Dockerfile.load and loaded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

skip() {
    if [ "${STROM_KIND_REQUIRED:-0}" = "1" ]; then
        echo "kind e2e FAILED: $* (STROM_KIND_REQUIRED=1 forbids skipping)" >&2
        exit 1
    fi
    echo "kind e2e skipped: $*"
    exit 0
}

command -v docker >/dev/null 2>&1 || skip "docker CLI not found"
docker info >/dev/null 2>&1 || skip "no Docker engine (docker info failed)"
command -v kind >/dev/null 2>&1 || skip "kind not found (https://kind.sigs.k8s.io)"
command -v helm >/dev/null 2>&1 || skip "helm not found (https://helm.sh)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl not found"
command -v go >/dev/null 2>&1 || skip "go not found (the scenario suite is Go)"

CLUSTER="strom-e2e-$$-${RANDOM}"
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/strom-operator/Chart.yaml")"
IMAGE="ghcr.io/strom-dev/strom:$APP_VERSION"
# The scenarios' load pod (e2e/kube/scenarios/load_test.go names this tag).
LOAD_IMAGE="ghcr.io/strom-dev/strom-e2e-load:dev"
WORK="$(mktemp -d)"
export KUBECONFIG="$WORK/kubeconfig"
CREATED=0

log() { printf '\n[kind-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

cleanup() {
    local rc=$?
    trap - EXIT
    if [ "$CREATED" = "1" ]; then
        if [ "${STROM_KIND_KEEP:-0}" = "1" ]; then
            log "keeping kind cluster $CLUSTER: export KUBECONFIG=$KUBECONFIG; delete with: kind delete cluster --name $CLUSTER"
        else
            log "deleting kind cluster $CLUSTER"
            kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" || true
            rm -rf "$WORK"
        fi
    else
        rm -rf "$WORK"
    fi
    if [ "$rc" -eq 0 ]; then
        echo "kind e2e passed"
    else
        echo "kind e2e FAILED" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT

log "creating kind cluster $CLUSTER"
CREATED=1
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s \
    ${STROM_KIND_NODE_IMAGE:+--image "$STROM_KIND_NODE_IMAGE"}
kubectl version

if [ "${STROM_KIND_SKIP_BUILD:-0}" = "1" ]; then
    log "using prebuilt image $IMAGE"
else
    log "building $IMAGE (Dockerfile, BuildKit)"
    DOCKER_BUILDKIT=1 docker build -t "$IMAGE" "$ROOT"
    log "building $LOAD_IMAGE (e2e/kind/Dockerfile.load: the scenarios' load pod)"
    DOCKER_BUILDKIT=1 docker build -f "$ROOT/e2e/kind/Dockerfile.load" -t "$LOAD_IMAGE" "$ROOT"
fi
kind load docker-image "$IMAGE" "$LOAD_IMAGE" --name "$CLUSTER"

log "running the scenario suite (e2e/kube/scenarios)"
cd "$ROOT/e2e/kube"
# SCENARIOS_KEEP keeps the scenarios' namespaces for a kept cluster.
STROM_SCENARIOS=1 SCENARIOS_KEEP="${STROM_KIND_KEEP:-0}" go test -count=1 -v -timeout "${STROM_KIND_SUITE_TIMEOUT:-40m}" ./scenarios/ "$@"
