package scenarios

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

const (
	operatorNamespace = "strom-system"
	// The release name of the README's `helm install` and of deploy/operator.yaml
	// (the chart rendered with that release name): Deployment and Lease.
	operatorName     = "strom-operator"
	operatorSelector = "app.kubernetes.io/name=strom-operator"
)

// ensureOperator makes sure an operator runs (from `kubectl apply -k deploy/`
// unless one is already installed, e.g. by TestTour) and one replica holds the
// Lease. Every scenario that needs the operator calls it, so each can run alone.
func ensureOperator(t *testing.T) {
	t.Helper()
	if _, err := run("", "kubectl", "-n", operatorNamespace, "get", "deployment", operatorName); err != nil {
		kubectl(t, "apply", "-k", path("deploy"))
	}
	kubectl(t, "-n", operatorNamespace, "rollout", "status", "deployment/"+operatorName, "--timeout=3m")
	waitLeader(t, 2*time.Minute)
}

// operatorPods are the running operator pods' names.
func operatorPods(t *testing.T) []string {
	t.Helper()
	out := kubectl(t, "-n", operatorNamespace, "get", "pods", "-l", operatorSelector,
		"--field-selector=status.phase=Running", "-o", "jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{end}{range .items[*]}{.metadata.name}{\"\\n\"}{end}")
	return strings.Fields(out)
}

// leaseHolder is the Lease's holderIdentity ("" when free or missing).
func leaseHolder() string {
	out, _ := jsonpath("-n", operatorNamespace, "lease", operatorName, "{.spec.holderIdentity}")
	return strings.TrimSpace(out)
}

// waitLeader waits until a running operator pod holds the Lease and returns it.
func waitLeader(t *testing.T, timeout time.Duration) string {
	t.Helper()
	var holder string
	kubetest.Eventually(t, timeout, "an operator pod holds Lease "+operatorName, func() (bool, string) {
		holder = leaseHolder()
		for _, p := range operatorPods(t) {
			if p == holder {
				return true, ""
			}
		}
		return false, fmt.Sprintf("holder %q, running pods %v", holder, operatorPods(t))
	})
	return holder
}

// operatorLogs is what one operator pod logged so far.
func operatorLogs(t *testing.T, pod string) string {
	t.Helper()
	return kubectl(t, "-n", operatorNamespace, "logs", pod)
}
