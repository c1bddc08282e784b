#!/usr/bin/env bash
# Proves the Kubernetes sandbox works: builds it (cached), vets and unit-tests
# e2e/kube, then runs the smoke test, which brings a sandbox up in a temporary
# directory, drives it with the built kubectl and helm (readyz, the operator's
# CRDs and `kubectl explain`, a namespace's default ServiceAccount, a
# StatefulSet's Pending pod, `helm install` of charts/strom-operator) and
# checks that `down` leaves no process behind.
set -euo pipefail
# As kube-build.sh builds: vet and test reuse its compiled packages.
export CGO_ENABLED=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/kube/bin"

"$ROOT/scripts/kube-build.sh"
cd "$ROOT/e2e/kube"
nice -n 15 go vet ./...
# -p 1: one sandbox at a time (each runs kube-proxy, whose nftables tables
# are machine-wide).
KUBE_SANDBOX_BIN="$BIN" nice -n 15 go test -p 1 -count=1 -timeout 20m -v ./...
