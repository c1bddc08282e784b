package scenarios

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"strom/e2e/kube/internal/kubetest"
)

// brokerProcess finds the strom-broker process of a broker pod on this
// machine: the node agent runs each pod in a network namespace named after
// the pod's UID, and the broker is the process in it whose command is
// strom-broker. Where pods run elsewhere (kind's node containers) there is
// none, and the scenario that needs one is skipped with that reason.
func brokerProcess(t *testing.T, ns, pod string) int {
	t.Helper()
	uid := strings.TrimSpace(kubectl(t, "get", "pod", "-n", ns, pod, "-o", "jsonpath={.metadata.uid}"))
	list, err := run("", "ip", "netns", "list")
	if err != nil {
		t.Skipf("cannot list network namespaces (%v): this scenario stops a broker's process and needs the sandbox's node agent on this machine", err)
	}
	for _, line := range strings.Split(list, "\n") {
		name := strings.Fields(line + " ")[0]
		if name == "" || !strings.HasSuffix(name, "-"+uid) {
			continue
		}
		pids, err := run("", "ip", "netns", "pids", name)
		if err != nil {
			t.Fatalf("ip netns pids %s: %v\n%s", name, err, pids)
		}
		for _, field := range strings.Fields(pids) {
			pid, _ := strconv.Atoi(field)
			comm, _ := os.ReadFile(filepath.Join("/proc", field, "comm"))
			if pid > 0 && strings.TrimSpace(string(comm)) == "strom-broker" {
				return pid
			}
		}
		t.Fatalf("no strom-broker process in %s (pids %q)", name, pids)
	}
	t.Skipf("pod %s/%s (uid %s) has no network namespace on this machine: this scenario stops a broker's process and needs the sandbox's node agent", ns, pod, uid)
	return 0
}

// signal sends sig to pid, failing the test if that is impossible (a process
// that is already gone is not an error: the caller waits for what follows).
func signal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
		t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// stopBroker stops a broker pod's process (SIGSTOP): to the cluster it is a
// broker that died without a word (no heartbeats, connections that answer
// nothing), and unlike a killed one the node agent does not restart it at
// once, so it stays down for as long as the scenario needs. It is resumed
// when the test ends, whatever happened, so no stopped process outlives it.
func stopBroker(t *testing.T, ns, pod string) int {
	t.Helper()
	pid := brokerProcess(t, ns, pod)
	signal(t, pid, syscall.SIGSTOP)
	t.Cleanup(func() {
		if kubetest.Running(pid) {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	t.Logf("stopped %s (pid %d)", pod, pid)
	return pid
}

// targetDir is where cargo put the project's binaries.
func targetDir() string {
	if dir := os.Getenv("CARGO_TARGET_DIR"); dir != "" {
		return dir
	}
	return filepath.Join(kubetest.Repo, "target")
}
