#!/usr/bin/env bash
# The operator's scenario suite (e2e/kube/scenarios) on the local Kubernetes
# sandbox: builds strom-broker and strom-operator (the project's image maps to
# them), strom-load (the load pod's image), the sandbox (cached) and Kafka's
# jars (the apache/kafka image maps to e2e/jvm/bin), brings a sandbox up in a temporary directory, runs the suite
# with its kubeconfig and the sandbox's kubectl and helm, and always takes the
# sandbox down again (also on failure or Ctrl-C). Needs root (the node agent).
#
#   scripts/kube-scenarios.sh                 # every scenario
#   scripts/kube-scenarios.sh -run 'TestGitOps|TestBadInput'
#   SCENARIOS_PARALLEL=3 scripts/kube-scenarios.sh   # three scenarios at a time
#
# Extra arguments go to `go test`. SCENARIOS_KEEP=1 keeps the namespaces and
# the sandbox (prints how to reach and remove it).
set -euo pipefail
# As kube-build.sh builds: the test binary reuses its compiled packages.
export CGO_ENABLED=0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/kube/bin"

# STROM_KUBE_PREBUILT=1: the caller (scripts/test-all.sh) has built all three already;
# a second cargo would only wait for the first one's lock on the target dir.
if [ "${STROM_KUBE_PREBUILT:-0}" != "1" ]; then
    (cd "$ROOT" && nice -n 10 cargo build -p strom-broker -p strom-operator -p strom-e2e-cluster --bin strom-broker --bin strom-operator --bin strom-load --bin strom-alerts)
    "$ROOT/scripts/kube-build.sh"
    # TestBrokerDown evaluates the operator's alerting rules with promtool (strom-alerts).
    "$ROOT/scripts/promtool-build.sh"
fi
# Kafka's jars for the tool pods; only when missing (a shared target/jvm stays as it is).
[ -d "$TARGET_DIR/jvm/lib" ] || "$ROOT/scripts/jvm-setup.sh" >/dev/null

WORK="$(mktemp -d)"
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "${SCENARIOS_KEEP:-0}" = "1" ]; then
        echo "kube-scenarios: keeping the sandbox: export KUBECONFIG=$WORK/sandbox/admin.kubeconfig PATH=$BIN:\$PATH;" \
            "remove it with: $BIN/sandbox down --dir $WORK/sandbox && rm -rf $WORK"
        exit "$rc"
    fi
    "$BIN/sandbox" down --dir "$WORK/sandbox" >&2 || rc=1
    rm -rf "$WORK"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

start=$SECONDS
KUBECONFIG="$("$BIN/sandbox" up --dir "$WORK/sandbox")"
export KUBECONFIG
echo "kube-scenarios: sandbox up in $((SECONDS - start))s ($KUBECONFIG)"
export PATH="$BIN:$PATH"
cd "$ROOT/e2e/kube"
# -parallel: the scenarios with only a namespace of their own (t.Parallel) run this many
# at a time once the serial ones (the operator's install and its leader election) are done.
# One by default: three at a time beside the other suites overloaded two cores (a
# broker pod of TestScaling's cluster was not Ready within 6 minutes). -timeout covers
# TestImageCluster's wait for the image suite's build (scripts/test-all.sh).
STROM_SCENARIOS=1 nice -n 10 go test -count=1 -timeout 60m -parallel "${SCENARIOS_PARALLEL:-1}" -v ./scenarios/ "$@"
echo "kube-scenarios: done in $((SECONDS - start))s"
