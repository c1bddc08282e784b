package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestMain runs the scenarios against the cluster KUBECONFIG names, with the
// kubectl and helm found on PATH, when STROM_SCENARIOS=1 says so; otherwise
// every scenario is skipped, so `go test ./...` of the module (the smoke
// script) neither fails without a cluster nor installs an operator into
// whatever cluster a contributor's KUBECONFIG happens to name.
// Afterwards it removes the operator install the scenarios shared.
func TestMain(m *testing.M) {
	if os.Getenv("STROM_SCENARIOS") != "1" || os.Getenv("KUBECONFIG") == "" {
		fmt.Println("scenarios: skipped (needs STROM_SCENARIOS=1 and KUBECONFIG; scripts/kube-scenarios.sh and e2e/kind/run.sh set both)")
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
