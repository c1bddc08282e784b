package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestMain runs the scenarios against the cluster KUBECONFIG names, with the
// kubectl and helm found on PATH; without them every scenario is skipped (so
// `go test ./...` of the module passes on a machine without a cluster).
// Afterwards it removes the operator install the scenarios shared.
func TestMain(m *testing.M) {
	if os.Getenv("KUBECONFIG") == "" {
		fmt.Println("scenarios: KUBECONFIG is not set; skipping (scripts/kube-scenarios.sh or e2e/kind/run.sh set it)")
		os.Exit(0)
	}
	for _, tool := range []string{"kubectl", "helm"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("scenarios: %s not on PATH\n", tool)
			os.Exit(1)
		}
	}
	code := m.Run()
	if os.Getenv("SCENARIOS_KEEP") != "1" {
		if err := waitNamespacesGone(); err != nil {
			fmt.Printf("scenarios: namespaces not gone: %v\n", err)
			code = 1
		}
		run("", "helm", "uninstall", operatorName, "-n", operatorNamespace, "--ignore-not-found", "--wait")
		if out, err := run("", "kubectl", "delete", "-k", path("deploy"), "--ignore-not-found", "--wait", "--timeout=3m"); err != nil {
			fmt.Printf("scenarios: removing the operator: %v\n%s", err, out)
			code = 1
		}
	}
	os.Exit(code)
}
