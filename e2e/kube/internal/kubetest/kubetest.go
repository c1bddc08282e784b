// Package kubetest is the glue the sandbox's own tests (smoke, nodetest)
// share: finding the built binaries, bringing a sandbox up in a test's temp
// directory and down again with a check that nothing it started still runs,
// running the built kubectl and helm against it, and waiting for conditions.
// The scenario suite uses only Eventually: it drives whatever cluster its
// KUBECONFIG names, with the tools on PATH.
package kubetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Repo is the repository's root, found from this file's place in it so it
// does not depend on which package's directory a test runs in.
var Repo = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..", ".."))
}()

// BinOrSkip is the directory scripts/kube-build.sh filled, from
// KUBE_SANDBOX_BIN; without it (or without root, when the test runs pods,
// which need network namespaces) the test is skipped, naming the script that
// runs it.
func BinOrSkip(t *testing.T, script string, needsRoot bool) string {
	t.Helper()
	bin := os.Getenv("KUBE_SANDBOX_BIN")
	if bin == "" {
		t.Skipf("KUBE_SANDBOX_BIN not set (run %s)", script)
	}
	if needsRoot && os.Geteuid() != 0 {
		t.Skip("the node agent needs root for network namespaces")
	}
	return bin
}

// Sandbox is one running sandbox and the built tools to drive it.
type Sandbox struct {
	Bin        string // the built binaries (sandbox, kubectl, helm, ...)
	Dir        string // its state directory
	Kubeconfig string // the admin kubeconfig `up` printed
}

// Up runs `sandbox up` in a fresh directory and registers down (Down when
// nil) as the test's cleanup, so the sandbox goes also when the test fails.
func Up(t *testing.T, bin string, down func(*testing.T, *Sandbox)) *Sandbox {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sandbox")
	cmd := exec.Command(filepath.Join(bin, "sandbox"), "up", "--dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("sandbox up:\n%s", stderr.String())
	s := &Sandbox{Bin: bin, Dir: dir, Kubeconfig: strings.TrimSpace(stdout.String())}
	if down == nil {
		down = func(t *testing.T, s *Sandbox) { s.Down(t) }
	}
	t.Cleanup(func() { down(t, s) })
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	if _, err := os.Stat(s.Kubeconfig); err != nil {
		t.Fatalf("up printed %q, not a kubeconfig: %v", s.Kubeconfig, err)
	}
	return s
}

// Down runs `sandbox down` and checks that every process the state file
// recorded has stopped and the state directory is gone.
func (s *Sandbox) Down(t *testing.T) {
	t.Helper()
	pids := RecordedPIDs(s.Dir)
	out, err := exec.Command(filepath.Join(s.Bin, "sandbox"), "down", "--dir", s.Dir).CombinedOutput()
	if err != nil {
		t.Errorf("sandbox down: %v\n%s", err, out)
	}
	for name, pid := range pids {
		if Running(pid) {
			t.Errorf("%s (pid %d) still runs after down", name, pid)
		}
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s still there after down (%v)", s.Dir, err)
	}
}

// RecordedPIDs reads the pids of the sandbox's processes from its state
// file (read before `down` removes it); nil when there is none.
func RecordedPIDs(dir string) map[string]int {
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil
	}
	var st struct {
		Procs []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"procs"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	pids := map[string]int{}
	for _, p := range st.Procs {
		pids[p.Name] = p.PID
	}
	return pids
}

// Running is true while the pid exists and is not a zombie (an exited child
// that the reaper has not collected yet runs nothing).
func Running(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(raw[bytes.LastIndexByte(raw, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// Run runs one of the built tools against the sandbox from the repository's
// root (so relative paths such as charts/strom-operator work), with Helm's
// homes inside the state directory. It returns stdout, trimmed; on failure
// stdout and stderr in the error.
func (s *Sandbox) Run(tool string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.Bin, tool), args...)
	cmd.Dir = Repo
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(s.Dir, "helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(s.Dir, "helm-config"),
		"HELM_DATA_HOME="+filepath.Join(s.Dir, "helm-data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String() + stderr.String()),
			fmt.Errorf("%s %s: %w\n%s%s", tool, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Kubectl runs the built kubectl and fails the test if it fails.
func (s *Sandbox) Kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.Run("kubectl", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Eventually polls check every half second until it reports true, and
// returns how long that took; after timeout the test fails with what and the
// last detail check gave.
func Eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, detail := check()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, detail)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
