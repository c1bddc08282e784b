package scenarios

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"strom/e2e/kube/internal/kubetest"
)

// path of a file in the repository.
func path(rel string) string { return filepath.Join(kubetest.Repo, rel) }

// run runs a tool from PATH (kubectl or helm) with stdin, returning combined
// output. The KUBECONFIG of the environment names the cluster.
func run(stdin string, tool string, args ...string) (string, error) {
	cmd := exec.Command(tool, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// kubectl runs kubectl and fails the test when it fails.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run("", "kubectl", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlIn runs kubectl with a manifest on stdin and fails the test when it fails.
func kubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := run(stdin, "kubectl", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s\nstdin:\n%s", strings.Join(args, " "), err, out, stdin)
	}
	return out
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run("", "helm", args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// getJSON reads one object (or list) as JSON.
func getJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := run("", "kubectl", append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		t.Fatalf("kubectl get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("kubectl get %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return obj
}

// jsonpath returns `kubectl get ... -o jsonpath=EXPR`, or "" with the error text
// when the object cannot be read (for use inside eventually).
func jsonpath(args ...string) (string, error) {
	n := len(args)
	out, err := run("", "kubectl", append(append([]string{"get"}, args[:n-1]...), "-o", "jsonpath="+args[n-1])...)
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return out, nil
}

// field walks nested maps: field(obj, "status", "readyReplicas").
func field(obj any, keys ...string) any {
	for _, k := range keys {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil
		}
		obj = m[k]
	}
	return obj
}

// namespace creates a fresh namespace for one scenario and deletes it (and
// waits for it) when the test ends; on failure it first prints what the
// operator and the brokers logged.
func namespace(t *testing.T, name string) string {
	t.Helper()
	// A namespace left by an interrupted run goes first.
	run("", "kubectl", "delete", "namespace", name, "--ignore-not-found", "--wait", "--timeout=3m")
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() {
		if t.Failed() {
			diagnostics(t, name)
		}
		if os.Getenv("SCENARIOS_KEEP") == "1" {
			return
		}
		// Not waited for here: brokers may take up to their 120 s grace period to
		// stop, and the next scenario does not need this namespace gone. TestMain
		// waits for every scenario namespace at the end.
		if out, err := run("", "kubectl", "delete", "namespace", name, "--wait=false"); err != nil {
			t.Errorf("deleting namespace %s: %v\n%s", name, err, out)
		}
		deletedMu.Lock()
		deleted = append(deleted, name)
		deletedMu.Unlock()
	})
	return name
}

// deleted are the namespaces the scenarios deleted without waiting; parallel
// scenarios append to it.
var (
	deleted   []string
	deletedMu sync.Mutex
)

// waitNamespacesGone waits (bounded) until every deleted namespace is gone.
func waitNamespacesGone() error {
	if len(deleted) == 0 {
		return nil
	}
	args := append([]string{"wait", "--for=delete", "--timeout=5m"}, prefixed("namespace/", deleted)...)
	if out, err := run("", "kubectl", args...); err != nil && !strings.Contains(out, "not found") {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// diagnostics prints objects, events and logs of a namespace and the operator.
func diagnostics(t *testing.T, ns string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "kafkaclusters,statefulsets,pods,services,endpointslices,configmaps,pdb,pvc", "-n", ns, "-o", "wide"},
		{"get", "kafkaclusters", "-n", ns, "-o", "yaml"},
		{"get", "events", "-n", ns, "--sort-by=.lastTimestamp"},
		{"get", "pods,leases", "-n", operatorNamespace, "-o", "wide"},
		{"logs", "-n", operatorNamespace, "-l", "app.kubernetes.io/name=strom-operator", "--all-containers", "--prefix", "--tail=150"},
		{"logs", "-n", ns, "-l", "app.kubernetes.io/name=strom-broker", "--all-containers", "--prefix", "--tail=400"},
	} {
		out, _ := run("", "kubectl", args...)
		t.Logf("--- kubectl %s\n%s", strings.Join(args, " "), out)
	}
}
