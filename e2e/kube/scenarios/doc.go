// Package scenarios is the operator's end-to-end suite on a real Kubernetes
// (issue 13, "What runs on it"). It only drives kubectl and helm against the
// cluster KUBECONFIG names, so the same tests run on the local sandbox
// (scripts/kube-scenarios.sh) and on kind (e2e/kind/run.sh). See README.md.
package scenarios
