package scenarios

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestKafkaTopic: the KafkaTopic controller against a real broker pod, seen
// through Kafka's own tools. A KafkaTopic creates its topic with its
// partitions and config; a config changed on the broker behind the operator's
// back is set back at the next reconcile; more partitions are added; fewer are
// reported (Ready=False PartitionDecrease), not attempted; a second resource
// naming the same topic gets ResourceConflict and changes nothing; deleting the
// resource deletes the topic (the finalizer).
func TestKafkaTopic(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s12-topics")
	kubectlIn(t, smallCluster("my-cluster", "ephemeral"), "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "my-cluster", readyTimeout)

	kubectlIn(t, kafkaTopic("orders", "", 3), "apply", "-n", ns, "-f", "-")
	waitTopic(t, ns, "orders", "True", "", func(f topicFacts) bool { return f.partitions == "3" && f.topicID != "" })
	describe := kafkaTopics(t, ns, "describe-1", "--describe", "--topic", "orders")
	wantTopic(t, describe, 3, "retention.ms=3600000")
	id := topicStatus(t, ns, "orders").topicID
	if !strings.Contains(describe, "TopicId: "+id) {
		t.Errorf("status.topicId %q is not the broker's:\n%s", id, describe)
	}

	// Drift: a config changed directly on the broker is set back.
	mustRunPod(t, ns, "drift", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-configs.sh", "--bootstrap-server", bootstrap(ns), "--alter",
		"--entity-type", "topics", "--entity-name", "orders", "--add-config", "retention.ms=1000")
	// Any change to the resource reconciles it now rather than at the next resync.
	kubectl(t, "annotate", "-n", ns, "kafkatopic", "orders", "scenario/poke=1", "--overwrite")
	// Seen from the broker (Events are no help: the recorder folds a second Applied
	// into the first one's series, note and all).
	tries := 0
	kubetest.Eventually(t, 2*time.Minute, "the drift reverted on the broker", func() (bool, string) {
		tries++
		out := kafkaTopics(t, ns, fmt.Sprintf("describe-drift-%d", tries), "--describe", "--topic", "orders")
		return strings.Contains(out, "retention.ms=3600000"), out
	})

	// More partitions.
	kubectl(t, "patch", "-n", ns, "kafkatopic", "orders", "--type=merge", "-p", `{"spec":{"partitions":5}}`)
	waitTopic(t, ns, "orders", "True", "", func(f topicFacts) bool { return f.partitions == "5" })
	wantTopic(t, kafkaTopics(t, ns, "describe-2", "--describe", "--topic", "orders"), 5, "retention.ms=3600000")

	// Fewer partitions: reported, not attempted.
	kubectl(t, "patch", "-n", ns, "kafkatopic", "orders", "--type=merge", "-p", `{"spec":{"partitions":2}}`)
	waitTopic(t, ns, "orders", "False", "PartitionDecrease", func(f topicFacts) bool { return f.partitions == "5" })

	// A second resource for the same topic loses to the older one.
	kubectlIn(t, kafkaTopic("orders-copy", "orders", 9), "apply", "-n", ns, "-f", "-")
	waitTopic(t, ns, "orders-copy", "False", "ResourceConflict", func(topicFacts) bool { return true })
	_, _, message := topicCondition(ns, "orders-copy")
	if !strings.Contains(message, "orders") {
		t.Errorf("the conflict does not name the winner: %s", message)
	}
	kubectl(t, "delete", "-n", ns, "kafkatopic", "orders-copy", "--wait", "--timeout=2m")

	// Deleting the resource deletes the topic.
	kubectl(t, "delete", "-n", ns, "kafkatopic", "orders", "--wait", "--timeout=2m")
	list := kafkaTopics(t, ns, "list", "--list")
	if regexp.MustCompile(`(?m)^orders$`).MatchString(list) {
		t.Fatalf("topic orders outlived its KafkaTopic:\n%s", list)
	}
	t.Log("KafkaTopic orders: created, drift reverted, grown to 5, decrease refused, conflict reported, deleted")
}

// kafkaTopic is a KafkaTopic of my-cluster; topicName, when given, differs from
// the resource name.
func kafkaTopic(name, topicName string, partitions int) string {
	spec := ""
	if topicName != "" {
		spec = "\n  topicName: " + topicName
	}
	return fmt.Sprintf(`apiVersion: kafka.strom.dev/v1alpha1
kind: KafkaTopic
metadata:
  name: %s
  labels: {kafka.strom.dev/cluster: my-cluster}
spec:%s
  partitions: %d
  replicas: 1
  config: {retention.ms: 3600000}
`, name, spec, partitions)
}

type topicFacts struct{ partitions, topicID, generation, observed string }

func topicStatus(t *testing.T, ns, name string) topicFacts {
	t.Helper()
	out, err := jsonpath("-n", ns, "kafkatopic", name,
		`{.status.partitions}|{.status.topicId}|{.metadata.generation}|{.status.observedGeneration}`)
	if err != nil {
		return topicFacts{}
	}
	f := strings.SplitN(out, "|", 4)
	for len(f) < 4 {
		f = append(f, "")
	}
	return topicFacts{f[0], f[1], f[2], f[3]}
}

func topicCondition(ns, name string) (string, string, string) {
	out, _ := jsonpath("-n", ns, "kafkatopic", name,
		`{.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}`)
	parts := strings.SplitN(out, "|", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// waitTopic waits until the KafkaTopic's status describes its current spec
// with Ready=status (and reason, when given) and facts that satisfy ok.
func waitTopic(t *testing.T, ns, name, status, reason string, ok func(topicFacts) bool) {
	t.Helper()
	kubetest.Eventually(t, 2*time.Minute, "kafkatopic/"+name+" Ready="+status+" "+reason, func() (bool, string) {
		s, r, m := topicCondition(ns, name)
		f := topicStatus(t, ns, name)
		done := s == status && (reason == "" || r == reason) && f.generation != "" && f.generation == f.observed && ok(f)
		return done, fmt.Sprintf("Ready=%s %s: %s; %+v", s, r, m, f)
	})
}

// kafkaTopics runs Kafka's kafka-topics tool against the cluster in a pod.
func kafkaTopics(t *testing.T, ns, pod string, args ...string) string {
	t.Helper()
	cmd := append([]string{"--command", "/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", bootstrap(ns)}, args...)
	return mustRunPod(t, ns, pod, kafkaImage, 3*time.Minute, cmd...)
}

// wantTopic checks kafka-topics --describe output for the partition count and
// a config.
func wantTopic(t *testing.T, describe string, partitions int, config string) {
	t.Helper()
	if !strings.Contains(describe, fmt.Sprintf("PartitionCount: %d", partitions)) {
		t.Fatalf("want %d partitions:\n%s", partitions, describe)
	}
	if !strings.Contains(describe, config) {
		t.Fatalf("want config %s:\n%s", config, describe)
	}
}
