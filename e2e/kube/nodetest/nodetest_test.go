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
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type sandbox struct {
	bin, dir, kubeconfig string
}

func TestNode(t *testing.T) {
	bin := os.Getenv("KUBE_SANDBOX_BIN")
	if bin == "" {
		t.Skip("KUBE_SANDBOX_BIN not set (run scripts/kube-node-test.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the node agent needs root for network namespaces")
	}
	s := up(t, bin)
	t.Run("node is Ready with its lease", s.nodeReady)
	t.Run("a pod sees its env, volumes and identity", s.podEnvAndVolumes)
	t.Run("pods reach each other by pod IP", s.podToPod)
	t.Run("Services and cluster DNS route to pods and to the API server", s.services)
	t.Run("a claim's data survives a StatefulSet pod's re-creation", s.statefulSetClaim)
	t.Run("a failing liveness probe restarts the container", s.liveness)
	t.Run("a startup probe holds the container back", s.startupProbe)
	t.Run("SIGKILL follows SIGTERM after the grace period", s.gracePeriod)
	t.Run("an unknown image is refused with an event", s.unknownImage)
}

func up(t *testing.T, bin string) *sandbox {
	dir := filepath.Join(t.TempDir(), "sandbox")
	cmd := exec.Command(filepath.Join(bin, "sandbox"), "up", "--dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("sandbox up:\n%s", stderr.String())
	s := &sandbox{bin: bin, dir: dir, kubeconfig: strings.TrimSpace(stdout.String())}
	t.Cleanup(func() { s.downLeavesNothing(t) })
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	return s
}

func (s *sandbox) run(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return strings.TrimSpace(out.String() + errOut.String()), err
	}
	return strings.TrimSpace(out.String()), nil
}

func (s *sandbox) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.run(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *sandbox) apply(t *testing.T, name, manifest string) {
	t.Helper()
	path := filepath.Join(filepath.Dir(s.dir), name+".yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	s.kubectl(t, "apply", "-f", path)
}

// eventually polls cond until it holds or the time is up; the last answer
// goes into the failure.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last: %s", what, within, last)
}

func (s *sandbox) jsonpath(ns, obj, path string) (string, error) {
	return s.run("-n", ns, "get", obj, "-o", "jsonpath="+path)
}

func (s *sandbox) waitJSONPath(t *testing.T, ns, obj, path, want string, within time.Duration) {
	t.Helper()
	eventually(t, within, obj+" "+path+" = "+want, func() (bool, string) {
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
