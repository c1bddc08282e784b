package scenarios

import (
	"fmt"
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

// prometheusRuleCRD is the Prometheus Operator's PrometheusRule resource as far
// as the operator needs it (it creates one per cluster when the API server
// serves the kind), without that project's full validation schema.
const prometheusRuleCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: PrometheusRule
    listKind: PrometheusRuleList
    plural: prometheusrules
    singular: prometheusrule
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
`

// servePrometheusRules makes the API server serve PrometheusRules for the rest
// of the test, as an install of the Prometheus Operator would.
func servePrometheusRules(t *testing.T) {
	t.Helper()
	kubectlIn(t, prometheusRuleCRD, "apply", "-f", "-")
	kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd/prometheusrules.monitoring.coreos.com")
	t.Cleanup(func() {
		if out, err := run("", "kubectl", "delete", "crd", "prometheusrules.monitoring.coreos.com", "--ignore-not-found", "--wait", "--timeout=2m"); err != nil {
			t.Errorf("removing the PrometheusRule CRD: %v\n%s", err, out)
		}
	})
}

// alertRules writes the operator's PrometheusRule of my-cluster to a file
// once it exists, for strom-alerts.
func alertRules(t *testing.T, ns string) string {
	t.Helper()
	var rule string
	kubetest.Eventually(t, 2*time.Minute, "the operator's PrometheusRule my-cluster-kafka-rules", func() (bool, string) {
		out, err := run("", "kubectl", "get", "prometheusrule", "-n", ns, "my-cluster-kafka-rules", "-o", "json")
		rule = out
		return err == nil && strings.Contains(out, "UnderReplicatedPartitions"), out
	})
	file := filepath.Join(t.TempDir(), "prometheusrule.json")
	if err := os.WriteFile(file, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// alertIs evaluates one alerting rule with Prometheus's rule engine (promtool,
// run by strom-alerts) on what the three broker pods' /metrics answer now; a
// pod whose scrape fails counts as down, as Prometheus records it. It reports
// whether the alert is in the state `expect` (firing or quiet), and why.
func alertIs(t *testing.T, ns, rules, alert, expect string) (bool, string) {
	t.Helper()
	args := []string{"--rules", rules, "--alert", alert, "--expect", expect}
	for i := 0; i < 3; i++ {
		pod := fmt.Sprintf("my-cluster-broker-%d", i)
		ip, _ := jsonpath("-n", ns, "pod", pod, "{.status.podIP}")
		if ip == "" {
			return false, pod + " has no IP yet"
		}
		args = append(args, "--target", fmt.Sprintf("%s/%s=http://%s:9644/metrics", ns, pod, ip))
	}
	cmd := exec.Command(filepath.Join(targetDir(), "debug", "strom-alerts"), args...)
	cmd.Env = append(os.Environ(), "STROM_PROMTOOL="+filepath.Join(targetDir(), "prom", "bin", "promtool"))
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
		return false, string(out)
	}
	if err != nil {
		t.Fatalf("strom-alerts %v: %v\n%s", args, err, out)
	}
	return true, string(out)
}

// partitionNamed matches a partition named as topic-partition.
var partitionNamed = regexp.MustCompile(`[A-Za-z0-9_.]+-[0-9]+`)

// clusterEvents lists reason and message of the Events about my-cluster.
func clusterEvents(t *testing.T, ns string) string {
	t.Helper()
	return kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=my-cluster", "-o",
		`jsonpath={range .items[*]}{.type} {.reason} (x{.count}): {.message}{"\n"}{end}`)
}

// TestBrokerDown (issue 14, scenarios 3 and 5; issue 16 on a secured
// cluster): one broker's process of the secured example stops under an
// acks=all load and a consumer group (SCRAM over TLS).
//   - The KafkaCluster's UnderReplicated condition turns True naming the
//     partitions, with a Warning Event, and the PrometheusRule's
//     UnderReplicatedPartitions alert fires on the pods' scraped metrics.
//   - A roll requested meanwhile (on broker 0's pod) waits, with the
//     partitions it would take below min.insync.replicas in status, and
//     restarts nothing.
//   - The stopped process is then killed; the node agent restarts it like a
//     kubelet. Once it is back the roll finishes by itself, the condition and
//     the alert clear, and the load has lost nothing and seen no error.
func TestBrokerDown(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	servePrometheusRules(t)
	ns := namespace(t, "s11-broker-down")
	secured := deploySecuredExample(t, ns)
	// Skips here, before any work, where the broker's process is not on this machine.
	brokerProcess(t, ns, "my-cluster-broker-2")
	rules := alertRules(t, ns)
	// A broker that stops without a word holds the producer's in-flight
	// requests until librdkafka's request timeout (30 s) ends them, after the
	// controller has fenced it and moved its leaderships; the client's default
	// delivery timeout (message.timeout.ms 5 minutes; Java's
	// delivery.timeout.ms 2) rides that out, the load's own 30 s (made for
	// prompt stops) cannot.
	load := startLoad(t, secured, "load-down", "--producer-config", "message.timeout.ms=300000")
	kubetest.Eventually(t, 2*time.Minute, "UnderReplicatedPartitions quiet on a healthy cluster", func() (bool, string) {
		return alertIs(t, ns, rules, "UnderReplicatedPartitions", "quiet")
	})
	before := brokerPods(t, ns)

	pid := stopBroker(t, ns, "my-cluster-broker-2")
	stopped := time.Now()
	kubetest.Eventually(t, 3*time.Minute, "UnderReplicated True with the partitions named", func() (bool, string) {
		status, reason, message := condition(ns, "my-cluster", "UnderReplicated")
		count, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.underReplicatedPartitions}")
		n, _ := strconv.Atoi(count)
		return status == "True" && n > 0 && partitionNamed.MatchString(message),
			fmt.Sprintf("%s %s (%s partitions): %s", status, reason, count, message)
	})
	t.Logf("UnderReplicated True %s after the stop", time.Since(stopped).Round(time.Second))
	if events := clusterEvents(t, ns); !strings.Contains(events, "Warning UnderReplicatedPartitions") {
		t.Errorf("no Warning Event for the under-replicated partitions:\n%s", events)
	}
	kubetest.Eventually(t, 2*time.Minute, "UnderReplicatedPartitions firing on the scraped metrics", func() (bool, string) {
		return alertIs(t, ns, rules, "UnderReplicatedPartitions", "firing")
	})

	// A roll of broker 0 now would leave partitions with one replica in sync.
	kubectl(t, "annotate", "pod", "-n", ns, "my-cluster-broker-0", "kafka.strom.dev/manual-rolling-update=true")
	kubetest.Eventually(t, 3*time.Minute, "the roll blocked with the partitions in status", func() (bool, string) {
		out, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster",
			`{.status.rollingRestart.blocked.broker}|{.status.rollingRestart.blocked.reason}|{.status.rollingRestart.blocked.partitions}`)
		parts := strings.SplitN(out, "|", 3)
		return len(parts) == 3 && parts[0] == "0" && partitionNamed.MatchString(parts[2]), out
	})
	_, reason, message := condition(ns, "my-cluster", "RollingRestart")
	t.Logf("roll waits %s after the stop: %s: %s", time.Since(stopped).Round(time.Second), reason, message)
	if now := brokerPods(t, ns); fmt.Sprint(now) != fmt.Sprint(before) {
		t.Fatalf("a pod was replaced while the roll was unsafe:\nbefore %v\nnow    %v", before, now)
	}

	// Killed, the process is restarted by the node agent; everything clears.
	signal(t, pid, syscall.SIGKILL)
	took := kubetest.Eventually(t, 8*time.Minute, "broker 0 rolled, partitions in sync, the cluster Ready", func() (bool, string) {
		now := brokerPods(t, ns)
		roll, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.rollingRestart}")
		urp, _, message := condition(ns, "my-cluster", "UnderReplicated")
		ready, _, _ := condition(ns, "my-cluster", "Ready")
		return now["my-cluster-broker-0"] != before["my-cluster-broker-0"] && roll == "" && urp == "False" &&
				ready == "True" && unreadyBrokers(ns, 3) == 0,
			fmt.Sprintf("pods %v; rollingRestart %s; UnderReplicated %s %s; Ready %s", now, roll, urp, message, ready)
	})
	t.Logf("broker 2 back, broker 0 rolled and partitions in sync %s after the kill", took.Round(time.Second))
	after := brokerPods(t, ns)
	for _, pod := range []string{"my-cluster-broker-1", "my-cluster-broker-2"} {
		if after[pod] != before[pod] {
			t.Errorf("%s was replaced; the roll was for broker 0 only", pod)
		}
	}
	if events := clusterEvents(t, ns); !strings.Contains(events, "Normal PartitionsInSync") {
		t.Errorf("no Normal Event when the partitions were back in sync:\n%s", events)
	}
	kubetest.Eventually(t, 2*time.Minute, "UnderReplicatedPartitions quiet again", func() (bool, string) {
		return alertIs(t, ns, rules, "UnderReplicatedPartitions", "quiet")
	})
	load.stop(t).requireNoErrors(t, "load while broker 2 was down and broker 0 rolled")
}
