package scenarios

import (
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// Images of the tools the scenarios run as pods. The sandbox's node agent maps
// them to local executables (e2e/kube/images.json); kind pulls them.
const (
	kcatImage  = "edenhill/kcat:1.7.1"
	kafkaImage = "apache/kafka:4.4.0"
)

// runPod runs `kubectl run NAME --restart=Never` with the given arguments after
// `--` (add "--command" in front to replace the entrypoint), waits until the
// pod has finished, and returns its log and whether it succeeded. Names must
// be unique within the namespace. `kubectl run -it --rm` would need `kubectl attach`, which
// the sandbox does not serve; waiting for the phase and reading the log is the
// same check.
func runPod(t *testing.T, ns, name, image string, timeout time.Duration, args ...string) (string, bool) {
	t.Helper()
	return runPodWith(t, ns, name, image, timeout, nil, args...)
}

// runPodWith is runPod with extra `kubectl run` flags (e.g. --overrides).
func runPodWith(t *testing.T, ns, name, image string, timeout time.Duration, flags []string, args ...string) (string, bool) {
	t.Helper()
	cmd := append([]string{"run", name, "-n", ns, "--image=" + image, "--restart=Never"}, flags...)
	if len(args) > 0 && args[0] == "--command" {
		cmd = append(cmd, "--command")
		args = args[1:]
	}
	kubectl(t, append(append(cmd, "--"), args...)...)
	// The pod is left for the namespace's deletion, so the failure dump still
	// shows it and its log.
	var phase string
	kubetest.Eventually(t, timeout, "pod "+name+" finishes", func() (bool, string) {
		phase, _ = jsonpath("-n", ns, "pod", name, "{.status.phase}")
		return phase == "Succeeded" || phase == "Failed", "phase " + phase
	})
	logs := kubectl(t, "-n", ns, "logs", name)
	return logs, phase == "Succeeded"
}

// mustRunPod is runPod that fails the test when the pod fails.
func mustRunPod(t *testing.T, ns, name, image string, timeout time.Duration, args ...string) string {
	t.Helper()
	logs, ok := runPod(t, ns, name, image, timeout, args...)
	if !ok {
		t.Fatalf("pod %s (%s %s) failed:\n%s", name, image, strings.Join(args, " "), logs)
	}
	return logs
}
