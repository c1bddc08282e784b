package scenarios

import (
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestTour is the README's "On Kubernetes" tour, command for command apart from
// building and loading the image (the sandbox maps the image to target/; kind
// gets it loaded by e2e/kind/run.sh) and `kubectl run -it --rm` (the pod's log
// is read after it finished instead: the sandbox serves no attach).
//
// The two installs are the same operator (deploy/operator.yaml is the chart
// rendered with release name strom-operator): same Deployment, RBAC and Lease
// names. Installed together, `kubectl apply` would take over the Helm release's
// objects and `helm uninstall` would then delete them, so they run one after
// the other: Helm for the first half of the tour, then `helm uninstall`, then
// `kubectl apply -k deploy/`, whose operator must take over the running
// cluster and serve the tour's `kubectl scale`. The -k install stays for the
// scenarios after this one.
func TestTour(t *testing.T) {
	// Start from no operator install (a rerun, or ensureOperator of a scenario run before).
	run("", "helm", "uninstall", operatorName, "-n", operatorNamespace, "--ignore-not-found", "--wait")
	run("", "kubectl", "delete", "-f", path("deploy/operator.yaml"), "--ignore-not-found", "--wait")
	waitNoOperatorPods(t)

	// helm install strom-operator charts/strom-operator -n strom-system --create-namespace
	helm(t, "install", operatorName, path("charts/strom-operator"), "-n", operatorNamespace, "--create-namespace")
	kubectl(t, "-n", operatorNamespace, "rollout", "status", "deployment/"+operatorName, "--timeout=3m")
	helmLeader := waitLeader(t, 2*time.Minute)
	t.Logf("helm install: operator pods %v, Lease held by %s", operatorPods(t), helmLeader)

	ns := namespace(t, "kafka")
	kubectl(t, "apply", "-n", ns, "-f", path(example))
	took := waitReady(t, ns, "my-cluster", readyTimeout)
	t.Logf("my-cluster Ready after %s", took.Round(time.Second))

	// kubectl get kafkaclusters -n kafka: the printer columns.
	table := kubectl(t, "get", "kafkaclusters", "-n", ns)
	checkTable(t, table, []string{"NAME", "DESIRED", "READY", "VERSION", "STATUS", "AGE"}, []string{"my-cluster", "3", "3", "", "True"})
	// kubectl wait -n kafka --for=condition=Ready kafkacluster/my-cluster --timeout=10m
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "kafkacluster/my-cluster", "--timeout=10m")
	listeners := kubectl(t, "get", "kafkacluster", "my-cluster", "-n", ns, "-o", "jsonpath={.status.listeners}")
	if !strings.Contains(listeners, `"bootstrapServers":"`+bootstrap(ns)+`"`) {
		t.Fatalf("status.listeners has no bootstrapServers %s: %s", bootstrap(ns), listeners)
	}

	// kubectl run -n kafka kcat --rm -it --restart=Never --image=edenhill/kcat:1.7.1 -- -b my-cluster-bootstrap.kafka.svc:9092 -L
	meta := mustRunPod(t, ns, "kcat", kcatImage, 2*time.Minute, "-b", bootstrap(ns), "-L")
	if ids := brokerIDs(meta); len(ids) != 3 {
		t.Fatalf("kcat -L lists brokers %v, want 3:\n%s", ids, meta)
	}

	// The other install: the same operator from plain manifests.
	helm(t, "uninstall", operatorName, "-n", operatorNamespace, "--wait")
	waitNoOperatorPods(t)
	// kubectl apply -k deploy/
	kubectl(t, "apply", "-k", path("deploy"))
	kubectl(t, "-n", operatorNamespace, "rollout", "status", "deployment/"+operatorName, "--timeout=3m")
	leader := waitLeader(t, 2*time.Minute)
	t.Logf("kubectl apply -k deploy/: operator pods %v, Lease held by %s", operatorPods(t), leader)

	// kubectl scale -n kafka kafkacluster/my-cluster --replicas=4: served by the -k operator.
	kubectl(t, "scale", "-n", ns, "kafkacluster/my-cluster", "--replicas=4")
	took = waitReady(t, ns, "my-cluster", readyTimeout)
	t.Logf("scaled to 4 and Ready after %s", took.Round(time.Second))
	if !strings.Contains(operatorLogs(t, leader), "my-cluster") {
		t.Errorf("the -k operator's leader %s logged nothing about my-cluster", leader)
	}

	// kubectl explain kafkacluster.spec.listeners
	explain := kubectl(t, "explain", "kafkacluster.spec.listeners")
	for _, want := range []string{"FIELDS:", "name", "port", "type"} {
		if !strings.Contains(explain, want) {
			t.Errorf("kubectl explain kafkacluster.spec.listeners lacks %q:\n%s", want, explain)
		}
	}
}

// waitNoOperatorPods waits until no operator pod is left (after an uninstall).
func waitNoOperatorPods(t *testing.T) {
	t.Helper()
	kubetest.Eventually(t, 2*time.Minute, "operator pods gone", func() (bool, string) {
		out, _ := run("", "kubectl", "-n", operatorNamespace, "get", "pods", "-l", operatorSelector, "-o", "name")
		return strings.TrimSpace(out) == "" || strings.Contains(out, "No resources"), out
	})
}

// checkTable checks a `kubectl get` table's header and that one row starts
// with the given cells ("" matches anything).
func checkTable(t *testing.T, table string, header, row []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(header, " ") {
		t.Fatalf("columns %v, want %v:\n%s", got, header, table)
	}
	for _, line := range lines[1:] {
		cells := strings.Fields(line)
		if len(cells) < len(row) || cells[0] != row[0] {
			continue
		}
		for i, want := range row {
			if want != "" && cells[i] != want {
				t.Fatalf("column %s is %q, want %q:\n%s", header[i], cells[i], want, table)
			}
		}
		return
	}
	t.Fatalf("no row for %s:\n%s", row[0], table)
}
