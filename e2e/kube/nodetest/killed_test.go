package nodetest

import (
	"os"
	"syscall"
	"testing"
	"time"
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
	bin := os.Getenv("KUBE_SANDBOX_BIN")
	if bin == "" {
		t.Skip("KUBE_SANDBOX_BIN not set (run scripts/kube-node-test.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the node agent needs root for network namespaces")
	}
	s := up(t, bin)
	s.apply(t, "orphan", killedPod)
	s.waitJSONPath(t, "default", "pod/orphan", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	if len(processesWith(sleepMarker)) == 0 {
		t.Fatal("the container's process is not running")
	}
	agent := recordedPIDs(s.dir)["node-agent"]
	if err := syscall.Kill(agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the container dies with the agent", func() (bool, string) {
		left := processesWith(sleepMarker)
		return len(left) == 0, "still running"
	})
}
