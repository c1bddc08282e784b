// Package smoke proves the sandbox is a working control plane: it brings one
// up with the built `sandbox` binary, drives it with the built kubectl and
// helm exactly as a user would, and checks that `down` leaves no process.
//
// It runs when KUBE_SANDBOX_BIN names the directory scripts/kube-build.sh
// filled (scripts/kube-smoke.sh sets it); otherwise it is skipped.
package smoke

import (
	"os/exec"
	"path/filepath"
	"testing"

	"strom/e2e/kube/internal/kubetest"
)

// sandbox is one running control plane and the tools to drive it.
type sandbox struct{ *kubetest.Sandbox }

func TestSandbox(t *testing.T) {
	bin := kubetest.BinOrSkip(t, "scripts/kube-smoke.sh", false)
	s := sandbox{kubetest.Up(t, bin, nil)}
	status := exec.Command(filepath.Join(bin, "sandbox"), "status", "--dir", s.Dir)
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("sandbox status: %v\n%s", err, out)
	} else {
		t.Logf("sandbox status:\n%s", out)
	}

	t.Run("readyz", s.readyz)
	t.Run("crds", s.crds)
	t.Run("namespace gets its default service account", s.serviceAccount)
	t.Run("statefulset pod stays pending; slices, PDB and GC follow it", s.statefulSet)
	t.Run("claim binds to a volume", s.volumes)
	t.Run("helm installs the operator chart", s.helmInstall)
}
