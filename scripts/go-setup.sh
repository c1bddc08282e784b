#!/usr/bin/env bash
# Builds the Go client programs of the compatibility suite (e2e/go: compat-franz,
# compat-sarama, compat-kafkago) into <target>/go/bin, after `go vet` and the unit
# tests of their shared scenario package. Modules come
# from the Go module proxy by go.sum into the usual module cache and builds use the
# usual build cache, so a second run downloads nothing and rebuilds nothing that
# did not change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/go/bin"

if ! command -v go >/dev/null 2>&1; then
    echo "go not found on PATH: the Go rows of e2e/clients/run_compat.py need Go 1.26+" >&2
    exit 1
fi
cd "$ROOT/e2e/go"
go vet ./...
go test -count=1 ./internal/...
mkdir -p "$BIN_DIR"
go build -o "$BIN_DIR/" ./cmd/...
echo "  $(go version | cut -d' ' -f3), $(cd "$BIN_DIR" && ls | tr '\n' ' ')in $BIN_DIR"
