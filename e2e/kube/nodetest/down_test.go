package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"strom/e2e/kube/internal/kubetest"
	"strom/e2e/kube/internal/node"
)

// downLeavesNothing runs `sandbox down` (Down checks the recorded processes
// and the state directory) and checks that every container process, pod
// network namespace, veth, the bridge, every mount and mount point, and the
// provisioned volumes are gone.
func downLeavesNothing(t *testing.T, s *kubetest.Sandbox) {
	nodeDir := filepath.Join(s.Dir, "node")
	names := node.NamesFor(nodeDir)
	var netns, veths []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), names.Prefix) {
			netns = append(netns, e.Name())
			veths = append(veths, names.HostVeth(strings.TrimPrefix(e.Name(), names.Prefix)))
		}
	}
	provisioned, _ := os.ReadFile(node.ProvisionedRecord(nodeDir))
	t.Logf("before down: %d pod namespaces, provisioned %q", len(netns), strings.Fields(string(provisioned)))
	s.Down(t)
	if left := processesWith(sleepMarker); len(left) > 0 {
		t.Errorf("container processes left: %v", left)
	}
	for _, n := range netns {
		if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
			t.Errorf("netns %s left", n)
		}
	}
	for _, l := range append(veths, names.Bridge) {
		if _, err := os.Stat(filepath.Join("/sys/class/net", l)); err == nil {
			t.Errorf("link %s left", l)
		}
	}
	tables, _ := exec.Command("nft", "list", "tables").CombinedOutput()
	for _, table := range []string{"inet " + names.Table(), "ip kube-proxy", "ip6 kube-proxy"} {
		if strings.Contains(string(tables), "table "+table+"\n") {
			t.Errorf("nftables table %s left", table)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, s.Dir) || strings.Contains(line, names.Prefix) || strings.Contains(line, mountRoot) {
			t.Errorf("mount left: %s", line)
		}
	}
	for _, p := range strings.Fields(string(provisioned)) {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("provisioned volume %s left", p)
		}
	}
	if _, err := os.Stat(mountRoot); err == nil {
		t.Errorf("mount point %s left on the host", mountRoot)
	}
}

// processesWith lists live processes whose command line has word.
func processesWith(word string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		for _, a := range args {
			if a == word {
				found = append(found, e.Name()+": "+strings.Join(args, " "))
			}
		}
	}
	return found
}
