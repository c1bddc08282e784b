// Package nodetest proves the node agent runs pods as a kubelet would: it
// brings a sandbox up with the built `sandbox` binary (whose last component
// is the node agent), runs pods through the built kubectl and checks what
// they see and what the API reports, then checks that `down` leaves no
// process, network namespace, link, mount or provisioned volume behind.
//
// It runs when KUBE_SANDBOX_BIN names the directory scripts/kube-build.sh
// filled and the test runs as root (network namespaces); else it is skipped.
package nodetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

type sandbox struct{ *kubetest.Sandbox }

func TestNode(t *testing.T) {
	s := up(t, kubetest.BinOrSkip(t, "scripts/kube-node-test.sh", true))
	t.Run("node is Ready with its lease", s.nodeReady)
	t.Run("a pod sees its env, volumes and identity", s.podEnvAndVolumes)
	t.Run("a renewed Secret reaches the running pod's volume", s.secretRenewal)
	t.Run("pods reach each other by pod IP", s.podToPod)
	t.Run("Services and cluster DNS route to pods and to the API server", s.services)
	t.Run("a claim's data survives a StatefulSet pod's re-creation", s.statefulSetClaim)
	t.Run("a failing liveness probe restarts the container", s.liveness)
	t.Run("a startup probe holds the container back", s.startupProbe)
	t.Run("SIGKILL follows SIGTERM after the grace period", s.gracePeriod)
	t.Run("an unknown image is refused with an event", s.unknownImage)
}

// up brings a sandbox up whose cleanup checks that `down` leaves nothing.
func up(t *testing.T, bin string) sandbox {
	return sandbox{kubetest.Up(t, bin, downLeavesNothing)}
}

// run runs the built kubectl.
func (s sandbox) run(args ...string) (string, error) { return s.Run("kubectl", args...) }

func (s sandbox) apply(t *testing.T, name, manifest string) {
	t.Helper()
	path := filepath.Join(filepath.Dir(s.Dir), name+".yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Kubectl(t, "apply", "-f", path)
}

func (s sandbox) jsonpath(ns, obj, path string) (string, error) {
	return s.run("-n", ns, "get", obj, "-o", "jsonpath="+path)
}

func (s sandbox) waitJSONPath(t *testing.T, ns, obj, path, want string, within time.Duration) {
	t.Helper()
	kubetest.Eventually(t, within, obj+" "+path+" = "+want, func() (bool, string) {
		out, err := s.jsonpath(ns, obj, path)
		return err == nil && out == want, out
	})
}

func decode(t *testing.T, raw string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(raw), into); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}
