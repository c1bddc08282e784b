package scenarios

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// kcatScript produces n keyed records to topic with acks=all through the
// bootstrap Service, then consumes the topic from the beginning and prints
// what it read. Run with the kcat image's shell (`--command -- sh -c`).
func kcatRoundTrip(ns, topic string, from, to int) string {
	return fmt.Sprintf(`set -e
seq %d %d | sed 's/.*/key&:value-&/' > /tmp/sent-%s
kcat -P -b %s -t %s -K: -X acks=all -X message.timeout.ms=60000 -l /tmp/sent-%[3]s
echo produced $(wc -l < /tmp/sent-%[3]s)
rm /tmp/sent-%[3]s
`, from, to, topic+ns, bootstrap(ns), topic)
}

// kcatConsume prints every record of topic as key:value, one a line.
func kcatConsume(t *testing.T, ns, pod, topic string) []string {
	t.Helper()
	out := mustRunPod(t, ns, pod, kcatImage, 2*time.Minute,
		"-C", "-b", bootstrap(ns), "-t", topic, "-o", "beginning", "-e", "-q", "-f", `%k:%s\n`)
	return strings.Fields(out)
}

// wantRecords checks that got holds exactly key<i>:value-<i> for i in [from, to].
func wantRecords(t *testing.T, got []string, from, to int) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range got {
		seen[r] = true
	}
	missing := 0
	for i := from; i <= to; i++ {
		if !seen[fmt.Sprintf("key%d:value-%d", i, i)] {
			missing++
		}
	}
	if missing > 0 || len(seen) != to-from+1 {
		t.Fatalf("consumed %d distinct records (%d missing of %d..%d); first ones: %v", len(seen), missing, from, to, head(got, 5))
	}
}

func head(s []string, n int) []string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// TestExampleCluster: deploy/examples/kafka-cluster.yaml (three brokers on
// persistent claims) becomes Ready; the brokers form one cluster with one
// metadata quorum; records go through my-cluster-bootstrap with kcat and with
// Kafka's console tools; a replication-factor-3 topic has replicas on three
// brokers.
func TestExampleCluster(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s3-example")
	kubectl(t, "apply", "-n", ns, "-f", path(example))
	took := waitReady(t, ns, "my-cluster", readyTimeout)
	t.Logf("three brokers Ready after %s", took.Round(time.Second))
	checkTable(t, kubectl(t, "get", "kafkaclusters", "-n", ns),
		[]string{"NAME", "DESIRED", "READY", "VERSION", "STATUS", "AGE"}, []string{"my-cluster", "3", "3"})
	claims := kubectl(t, "get", "pvc", "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}`)
	if n := strings.Count(claims, "=Bound"); n != 3 {
		t.Fatalf("want 3 bound claims, got:\n%s", claims)
	}

	// One quorum: Kafka's own tool asks any broker for the quorum's state.
	quorum := mustRunPod(t, ns, "quorum", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-metadata-quorum.sh", "--bootstrap-server", bootstrap(ns), "describe", "--status")
	t.Logf("kafka-metadata-quorum describe --status:\n%s", quorum)
	voters := regexp.MustCompile(`CurrentVoters:\s*\[(.*)\]`).FindStringSubmatch(quorum)
	if voters == nil || len(regexp.MustCompile(`"id":\s*\d+`).FindAllString(voters[1], -1)) != 3 {
		t.Fatalf("want three current voters:\n%s", quorum)
	}
	if !regexp.MustCompile(`LeaderId:\s*[0-2]\b`).MatchString(quorum) {
		t.Fatalf("no leader among brokers 0-2:\n%s", quorum)
	}

	// kcat: produce 200 records with acks=all, consume them from the beginning.
	out := mustRunPod(t, ns, "kcat-produce", kcatImage, 3*time.Minute, "--command", "sh", "-c",
		kcatRoundTrip(ns, "kcat-topic", 1, 200))
	t.Log(strings.TrimSpace(out))
	wantRecords(t, kcatConsume(t, ns, "kcat-consume", "kcat-topic"), 1, 200)

	// Kafka's console tools: an RF 3 topic, the verifiable producer, the console consumer.
	mustRunPod(t, ns, "topic-create", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", bootstrap(ns), "--create", "--topic", "rf3",
		"--partitions", "3", "--replication-factor", "3")
	describe := mustRunPod(t, ns, "topic-describe", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", bootstrap(ns), "--describe", "--topic", "rf3")
	t.Logf("kafka-topics --describe:\n%s", describe)
	partitions := regexp.MustCompile(`Partition:\s*(\d+)\s+Leader:\s*(\d+)\s+Replicas:\s*([\d,]+)\s+Isr:\s*([\d,]+)`).FindAllStringSubmatch(describe, -1)
	if len(partitions) != 3 {
		t.Fatalf("want 3 partitions in:\n%s", describe)
	}
	for _, p := range partitions {
		replicas := strings.Split(p[3], ",")
		sort.Strings(replicas)
		if strings.Join(replicas, ",") != "0,1,2" {
			t.Errorf("partition %s has replicas %s, want one on each of brokers 0, 1, 2", p[1], p[3])
		}
	}
	out = mustRunPod(t, ns, "producer", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-verifiable-producer.sh", "--bootstrap-server", bootstrap(ns), "--topic", "rf3",
		"--max-messages", "300", "--acks", "-1")
	if !strings.Contains(out, `"acked":300`) {
		t.Fatalf("kafka-verifiable-producer did not get 300 acks:\n%s", tail(out, 5))
	}
	out = mustRunPod(t, ns, "consumer", kafkaImage, 3*time.Minute, "--command",
		"/opt/kafka/bin/kafka-console-consumer.sh", "--bootstrap-server", bootstrap(ns), "--topic", "rf3",
		"--from-beginning", "--max-messages", "300", "--timeout-ms", "60000")
	values := map[string]bool{}
	for _, v := range strings.Fields(out) {
		values[v] = true
	}
	for i := 0; i < 300; i++ {
		if !values[fmt.Sprint(i)] {
			t.Fatalf("kafka-console-consumer did not read value %d of 300:\n%s", i, tail(out, 10))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
