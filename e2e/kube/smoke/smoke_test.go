// Package smoke proves the sandbox is a working control plane: it brings one
// up with the built `sandbox` binary, drives it with the built kubectl and
// helm exactly as a user would, and checks that `down` leaves no process.
//
// It runs when KUBE_SANDBOX_BIN names the directory scripts/kube-build.sh
// filled (scripts/kube-smoke.sh sets it); otherwise it is skipped.
package smoke

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sandbox is one running control plane and the tools to drive it.
type sandbox struct {
	t          *testing.T
	bin        string
	repo       string
	dir        string
	kubeconfig string
}

func TestSandbox(t *testing.T) {
	bin := os.Getenv("KUBE_SANDBOX_BIN")
	if bin == "" {
		t.Skip("KUBE_SANDBOX_BIN not set (run scripts/kube-smoke.sh)")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	s := up(t, bin, repo)

	t.Run("readyz", s.readyz)
	t.Run("crds", s.crds)
	t.Run("namespace gets its default service account", s.serviceAccount)
	t.Run("statefulset pod stays pending; slices, PDB and GC follow it", s.statefulSet)
	t.Run("claim binds to a volume", s.volumes)
	t.Run("helm installs the operator chart", s.helmInstall)
}

// up starts the sandbox in a fresh state directory and registers `down`,
// which must stop every recorded process, as cleanup (also on failure).
func up(t *testing.T, bin, repo string) *sandbox {
	dir := filepath.Join(t.TempDir(), "sandbox")
	cmd := exec.Command(filepath.Join(bin, "sandbox"), "up", "--dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("sandbox up:\n%s", stderr.String())
	t.Cleanup(func() { down(t, bin, dir) })
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	kubeconfig := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Fatalf("up printed %q, not a kubeconfig: %v", kubeconfig, err)
	}
	status := exec.Command(filepath.Join(bin, "sandbox"), "status", "--dir", dir)
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("sandbox status: %v\n%s", err, out)
	} else {
		t.Logf("sandbox status:\n%s", out)
	}
	return &sandbox{t: t, bin: bin, repo: repo, dir: dir, kubeconfig: kubeconfig}
}

func down(t *testing.T, bin, dir string) {
	pids := recordedPIDs(t, dir)
	out, err := exec.Command(filepath.Join(bin, "sandbox"), "down", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Errorf("sandbox down: %v\n%s", err, out)
	}
	for name, pid := range pids {
		if running(pid) {
			t.Errorf("%s (pid %d) still runs after down", name, pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s still there after down (%v)", dir, err)
	}
}

// recordedPIDs reads the pids from the state file before `down` removes it.
func recordedPIDs(t *testing.T, dir string) map[string]int {
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Logf("no state file: %v", err)
		return nil
	}
	var st struct {
		Procs []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"procs"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("state file: %v", err)
	}
	pids := map[string]int{}
	for _, p := range st.Procs {
		pids[p.Name] = p.PID
	}
	return pids
}

// running is true while the pid exists and is not a zombie (an exited child
// that the reaper has not collected yet runs nothing).
func running(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(raw[bytes.LastIndexByte(raw, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// run runs one of the built tools against the sandbox.
func (s *sandbox) run(tool string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.repo
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig, "HELM_CACHE_HOME="+filepath.Join(s.dir, "helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(s.dir, "helm-config"), "HELM_DATA_HOME="+filepath.Join(s.dir, "helm-data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *sandbox) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.run("kubectl", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls check until it returns true or the timeout passes; the
// last message says what was still missing.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
