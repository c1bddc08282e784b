#!/usr/bin/env bash
# Builds into <target>/prom/bin, at the Prometheus version e2e/prom/go.mod pins:
#   promtool   github.com/prometheus/prometheus/cmd/promtool (the real rule engine and
#              rule checker: `promtool check rules`, `promtool test rules`)
#   dashcheck  e2e/prom/cmd/dashcheck (the Grafana dashboard's PromQL through
#              Prometheus's parser, its metric names against a broker's scrape)
# after `go vet` and the unit tests of e2e/prom. Idempotent: when nothing that goes
# into the binaries changed since the last build (stamp file) it does nothing;
# otherwise `go build` reuses Go's build cache, so only a cold cache compiles
# Prometheus.
# CARGO_TARGET_DIR is honoured like the rest of the repo's scripts.
set -euo pipefail
# CGO off for vet, tests and build alike, so each package compiles once (as in the
# upstream release builds).
export CGO_ENABLED=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/prom/bin"
MOD="$ROOT/e2e/prom"
STAMP="$BIN/.build-stamp"
SELF="$ROOT/scripts/promtool-build.sh"

if ! command -v go >/dev/null 2>&1; then
    echo "promtool-build: go not found (Go 1.26 is needed)" >&2
    exit 1
fi
cd "$MOD"

stamp() {
    {
        go version
        sha256sum "$SELF" go.mod go.sum
        find . -name '*.go' | LC_ALL=C sort | xargs sha256sum
        sha256sum "$ROOT/charts/strom-operator/files/grafana-dashboard.json"
    } | sha256sum | cut -d' ' -f1
}

want="$(stamp)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$BIN/promtool" ] && [ -x "$BIN/dashcheck" ]; then
    echo "promtool-build: $BIN is up to date"
    exit 0
fi

version="$(go list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
mkdir -p "$BIN"
echo "promtool-build: building promtool (github.com/prometheus/prometheus $version) and dashcheck into $BIN"
start=$SECONDS
# nice: the machine is shared.
nice -n 15 go vet ./...
nice -n 15 go test -count=1 ./...
# The version stamp is what upstream's Makefile sets. remove_all_sd is Prometheus's own
# build tag (plugins/) for leaving its service discoveries out: rule checks and rule
# tests never use them, and they are most of a cold build (the cloud SDKs).
nice -n 15 go build -tags remove_all_sd -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    -o "$BIN/" github.com/prometheus/prometheus/cmd/promtool ./cmd/dashcheck
echo "$want" >"$STAMP"
echo "promtool-build: done in $((SECONDS - start))s"
