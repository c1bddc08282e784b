package smoke

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// fakeBin makes a bin directory with the real sandbox and etcd and shell
// stand-ins for the other components, so a test can make `up` fail or hang
// at the API server on purpose.
func fakeBin(t *testing.T, apiServerScript string) string {
	bin := kubetest.BinOrSkip(t, "scripts/kube-smoke.sh", false)
	dir := t.TempDir()
	for _, real := range []string{"sandbox", "etcd"} {
		if err := os.Symlink(filepath.Join(bin, real), filepath.Join(dir, real)); err != nil {
			t.Fatal(err)
		}
	}
	for name, script := range map[string]string{
		"kube-apiserver":          apiServerScript,
		"kube-controller-manager": "exit 1",
		"kube-scheduler":          "exit 1",
		"node-agent":              "exit 1",
		"kube-proxy":              "exit 1",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var startedRE = regexp.MustCompile(`started (\S+) \(pid (\d+)\)`)

// startedPIDs collects "started NAME (pid N)" lines of up's progress.
func startedPIDs(progress string) map[string]int {
	pids := map[string]int{}
	for _, m := range startedRE.FindAllStringSubmatch(progress, -1) {
		pid, _ := strconv.Atoi(m[2])
		pids[m[1]] = pid
	}
	return pids
}

func assertCleanedUp(t *testing.T, dir string, pids map[string]int) {
	t.Helper()
	if len(pids) == 0 {
		t.Fatal("up reported no started process")
	}
	for name, pid := range pids {
		if kubetest.Running(pid) {
			t.Errorf("%s (pid %d) still runs after the failed up", name, pid)
			// Never leak it, even when the test fails: it leads its own
			// process group (Setsid).
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left behind (%v)", dir, err)
	}
}

func TestUpCleansUpWhenAComponentFails(t *testing.T) {
	bin := fakeBin(t, "echo 'apiserver: cannot start' >&2; exit 3")
	dir := filepath.Join(t.TempDir(), "sandbox")
	out, err := exec.Command(filepath.Join(bin, "sandbox"), "up", "--dir", dir, "--bin", bin).CombinedOutput()
	if err == nil {
		t.Fatalf("up succeeded with a failing API server:\n%s", out)
	}
	if !strings.Contains(string(out), "kube-apiserver exited") || !strings.Contains(string(out), "apiserver: cannot start") {
		t.Errorf("up does not report the API server's exit and log:\n%s", out)
	}
	assertCleanedUp(t, dir, startedPIDs(string(out)))
}

func TestUpCleansUpWhenInterrupted(t *testing.T) {
	// An API server that never becomes healthy: up waits until interrupted.
	bin := fakeBin(t, "exec sleep 600")
	dir := filepath.Join(t.TempDir(), "sandbox")
	cmd := exec.Command(filepath.Join(bin, "sandbox"), "up", "--dir", dir, "--bin", bin)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		progress.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "started kube-apiserver") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		progress.WriteString(lines.Text() + "\n")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("interrupted up exited 0:\n%s", progress.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("up did not stop within a minute of SIGINT:\n%s", progress.String())
	}
	pids := startedPIDs(progress.String())
	if _, ok := pids["kube-apiserver"]; !ok {
		t.Fatalf("up never started the API server:\n%s", progress.String())
	}
	assertCleanedUp(t, dir, pids)
}
