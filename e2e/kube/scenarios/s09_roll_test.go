package scenarios

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// quorumLeader asks Kafka's own tool which broker leads the metadata quorum
// (the active controller).
func quorumLeader(t *testing.T, a access, pod string) string {
	t.Helper()
	out := a.kafkaTool(t, pod, "kafka-metadata-quorum", "describe", "--status")
	m := regexp.MustCompile(`LeaderId:\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no quorum leader in:\n%s", out)
	}
	return m[1]
}

// unreadyBrokers counts broker pods that are missing or not Ready.
func unreadyBrokers(ns string, replicas int) int {
	out, _ := jsonpath("-n", ns, "pods", "-l", "app.kubernetes.io/name=strom-broker,kafka.strom.dev/cluster=my-cluster",
		`{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
	ready := strings.Count(out, "=True")
	return replicas - ready
}

// TestRollingRestart (issue 14, scenario 1; issue 16 on a secured cluster): a
// configuration change only a restart applies rolls all three brokers of the
// secured example, one at a time, the active controller last, under an
// acks=all load and a consumer group (SCRAM over TLS) that see no error and
// lose nothing.
func TestRollingRestart(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s9-roll")
	secured := deploySecuredExample(t, ns)
	load := startLoad(t, secured, "load-roll")
	controller := "my-cluster-broker-" + quorumLeader(t, secured, "quorum-before")
	before := brokerPods(t, ns)

	// log.cleaner.threads is read at start only: the broker takes it by restarting.
	kubectl(t, "patch", "-n", ns, "kafkacluster", "my-cluster", "--type=merge", "-p",
		`{"spec":{"config":{"log.cleaner.threads":2}}}`)
	var order []string
	mostUnready := 0
	took := kubetest.Eventually(t, 12*time.Minute, "every broker restarted and the roll finished", func() (bool, string) {
		mostUnready = max(mostUnready, unreadyBrokers(ns, 3))
		now := brokerPods(t, ns)
		for name, uid := range now {
			if uid != before[name] && !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
		roll, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.rollingRestart}")
		ready, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", `{.status.conditions[?(@.type=="Ready")].status}`)
		return len(order) == 3 && roll == "" && ready == "True" && unreadyBrokers(ns, 3) == 0,
			fmt.Sprintf("restarted %v; rollingRestart %s; Ready %s", order, roll, ready)
	})
	t.Logf("rolled %v in %s (controller was %s); at most %d broker(s) unready at once", order, took.Round(time.Second), controller, mostUnready)
	if mostUnready > 1 {
		t.Errorf("%d brokers were unready at once; the roll restarts one at a time", mostUnready)
	}
	if order[len(order)-1] != controller {
		t.Errorf("restart order %v: the active controller %s is not last", order, controller)
	}
	events := clusterEvents(t, ns)
	t.Logf("events:\n%s", events)
	// An Event per restart, each naming its pod (not one series counting them).
	restarted := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^Normal RestartingBroker \(x[^)]*\): restarting broker (\d)`).FindAllStringSubmatch(events, -1) {
		restarted[m[1]] = true
	}
	if len(restarted) != 3 {
		t.Errorf("RestartingBroker Events for brokers %v; one per restart expected:\n%s", restarted, events)
	}
	load.stop(t).requireNoErrors(t, "load during the rolling restart")
}

// TestDynamicConfig (issue 14, scenario 2): a change of a key the broker takes
// at run time is applied with IncrementalAlterConfigs; no pod restarts.
func TestDynamicConfig(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s10-dynamic")
	kubectl(t, "apply", "-n", ns, "-f", path(example))
	waitReady(t, ns, "my-cluster", readyTimeout)
	before := brokerPods(t, ns)

	kubectl(t, "patch", "-n", ns, "kafkacluster", "my-cluster", "--type=merge", "-p",
		`{"spec":{"config":{"log.retention.ms":7200000}}}`)
	attempt := 0
	kubetest.Eventually(t, 4*time.Minute, "every broker runs log.retention.ms=7200000", func() (bool, string) {
		attempt++
		out, _ := runPod(t, ns, fmt.Sprintf("configs-%d", attempt), kafkaImage, 3*time.Minute, "--command",
			"/opt/kafka/bin/kafka-configs.sh", "--bootstrap-server", bootstrap(ns), "--describe",
			"--entity-type", "brokers", "--all")
		// Unchanged pods (checked below) run their old properties file, so the new
		// value can only have come at run time.
		return len(regexp.MustCompile(`(?m)^\s+log\.retention\.ms=7200000 `).FindAllString(out, -1)) == 3, out
	})
	if after := brokerPods(t, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a run-time change restarted brokers:\nbefore %v\nafter  %v", before, after)
	}
}
