package scenarios

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// thousandTopics is the number of KafkaTopics TestThousandTopics applies.
const thousandTopics = 1000

// TestThousandTopics: issue 16 §3, a thousand KafkaTopics reconcile in seconds,
// not minutes. They are applied at once (one multi-document YAML) to a
// one-broker cluster; the test waits until all are Ready, logs how long that
// took, checks the broker has them all (kafka-topics --list), then deletes them
// all and checks the broker has none left (the finalizers). The bound is
// generous (a shared two-core sandbox); the logged time is the measurement.
func TestThousandTopics(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s14-thousand-topics")
	kubectlIn(t, smallCluster("my-cluster", "ephemeral"), "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "my-cluster", readyTimeout)

	var docs strings.Builder
	for i := 0; i < thousandTopics; i++ {
		fmt.Fprintf(&docs, `---
apiVersion: kafka.strom.dev/v1alpha1
kind: KafkaTopic
metadata:
  name: %s
  labels: {kafka.strom.dev/cluster: my-cluster}
spec:
  partitions: 1
  replicas: 1
`, scaleTopic(i))
	}
	// The burst must not cost the operator its lease (it then exits and a standby, or
	// its own restart, starts over): the same leader, with no restarts, at the end.
	leader := waitLeader(t, 2*time.Minute)
	restarts := operatorRestarts(t)
	start := time.Now()
	kubectlIn(t, docs.String(), "apply", "-n", ns, "-f", "-")
	applied := time.Since(start)

	// One list per poll: the Ready status of every KafkaTopic, one a line.
	kubetest.Eventually(t, 10*time.Minute, fmt.Sprintf("%d KafkaTopics Ready", thousandTopics), func() (bool, string) {
		out, err := jsonpath("-n", ns, "kafkatopics",
			`{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		ready := strings.Count(out, "True\n")
		return ready == thousandTopics, fmt.Sprintf("%d of %d Ready (%s since the apply)", ready, thousandTopics, time.Since(start).Round(time.Second))
	})
	t.Logf("%d KafkaTopics Ready %s after the apply started (the apply itself took %s)",
		thousandTopics, time.Since(start).Round(100*time.Millisecond), applied.Round(100*time.Millisecond))

	if now, again := leaseHolder(), operatorRestarts(t); now != leader || again != restarts {
		t.Fatalf("the operator lost its lease during the burst: leader %s then %s, restarts %s then %s",
			leader, now, restarts, again)
	}

	onBroker := regexp.MustCompile(`(?m)^scale-\d{4}$`)
	if n := len(onBroker.FindAllString(kafkaTopics(t, ns, "list-ready", "--list"), -1)); n != thousandTopics {
		t.Fatalf("the broker has %d of the %d topics", n, thousandTopics)
	}

	// Without kubectl's --wait, which checks the objects one after another (minutes for
	// a thousand, long after the operator has released them): one list per poll until
	// every finalizer is released and the resources are gone.
	deleting := time.Now()
	kubectl(t, "delete", "-n", ns, "kafkatopics", "--all", "--wait=false")
	kubetest.Eventually(t, 10*time.Minute, "every KafkaTopic gone", func() (bool, string) {
		out, err := jsonpath("-n", ns, "kafkatopics", `{range .items[*]}{.metadata.name}{"\n"}{end}`)
		if err != nil {
			return false, err.Error()
		}
		left := strings.Count(out, "\n")
		return left == 0, fmt.Sprintf("%d KafkaTopics left (%s since the delete)", left, time.Since(deleting).Round(time.Second))
	})
	t.Logf("%d KafkaTopics deleted in %s", thousandTopics, time.Since(deleting).Round(100*time.Millisecond))
	if left := onBroker.FindAllString(kafkaTopics(t, ns, "list-deleted", "--list"), -1); len(left) != 0 {
		t.Fatalf("%d topics outlived their KafkaTopics, e.g. %s", len(left), left[0])
	}
}

// operatorRestarts are the operator pods' containers' restart counts.
func operatorRestarts(t *testing.T) string {
	t.Helper()
	return kubectl(t, "-n", operatorNamespace, "get", "pods", "-l", operatorSelector, "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[*].restartCount} {end}`)
}

func scaleTopic(i int) string { return fmt.Sprintf("scale-%04d", i) }
