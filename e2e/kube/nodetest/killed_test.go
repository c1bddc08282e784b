package nodetest

import (
	"syscall"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

const killedPod = `apiVersion: v1
kind: Pod
metadata: {name: orphan}
spec:
  securityContext: {runAsUser: 1000}
  containers:
  - name: main
    image: busybox
    command: [sleep, "86399"]
    volumeMounts: [{name: e, mountPath: /strom-nodetest/orphan}]
  volumes: [{name: e, emptyDir: {}}]
`

// TestKilledAgent: when the agent is killed outright (no chance to clean
// up), its containers die with it (parent-death signal, kept across the
// uid change) and `down` still removes its network, mount points and the
// rest (the cleanup registered by up checks that).
func TestKilledAgent(t *testing.T) {
	s := up(t, kubetest.BinOrSkip(t, "scripts/kube-node-test.sh", true))
	s.apply(t, "orphan", killedPod)
	s.waitJSONPath(t, "default", "pod/orphan", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	// Running is reported once the agent has started the container's init,
	// which sets up its mounts and user before it execs the command.
	kubetest.Eventually(t, 10*time.Second, "the container's process runs", func() (bool, string) {
		return len(processesWith(sleepMarker)) > 0, "no process with " + sleepMarker
	})
	agent := kubetest.RecordedPIDs(s.Dir)["node-agent"]
	if err := syscall.Kill(agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 10*time.Second, "the container dies with the agent", func() (bool, string) {
		left := processesWith(sleepMarker)
		return len(left) == 0, "still running"
	})
}
