#!/usr/bin/env bash
# Proves the node agent runs pods as a kubelet would: builds the sandbox
# (cached) and runs e2e/kube/nodetest, which brings a sandbox up with its
# node agent, runs pods (env, volumes, pod-to-pod traffic, a StatefulSet's
# claim across re-creation, a liveness restart, an unknown image) and checks
# that `down` leaves no process, namespace, link, mount or volume behind.
# Needs root (network namespaces).
set -euo pipefail
# As kube-build.sh builds: vet and test reuse its compiled packages.
export CGO_ENABLED=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/kube/bin"

"$ROOT/scripts/kube-build.sh"
cd "$ROOT/e2e/kube"
KUBE_SANDBOX_BIN="$BIN" nice -n 15 go test -count=1 -timeout 15m -v ./nodetest/ ./internal/node/
