package scenarios

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// brokerPods maps the broker pods of my-cluster to their UIDs.
func brokerPods(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := kubectl(t, "get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=strom-broker,kafka.strom.dev/cluster=my-cluster",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{"\n"}{end}`)
	pods := map[string]string{}
	for _, line := range strings.Fields(out) {
		name, uid, _ := strings.Cut(line, "=")
		pods[name] = uid
	}
	return pods
}

// deleteAndWaitBack deletes broker pods and waits until the StatefulSet has
// made new ones (new UIDs) that are Ready, and the KafkaCluster is Ready again.
func deleteAndWaitBack(t *testing.T, ns string, pods ...string) {
	t.Helper()
	before := brokerPods(t, ns)
	claims := podClaims(t, ns)
	kubectl(t, append([]string{"delete", "pod", "-n", ns, "--wait=false"}, pods...)...)
	took := kubetest.Eventually(t, 4*time.Minute, "deleted broker pods back and Ready", func() (bool, string) {
		now := brokerPods(t, ns)
		for _, p := range pods {
			if now[p] == "" || now[p] == before[p] {
				return false, p + " not recreated yet"
			}
			ready, _ := jsonpath("-n", ns, "pod", p, `{.status.conditions[?(@.type=="Ready")].status}`)
			if ready != "True" {
				return false, p + " not Ready"
			}
		}
		return true, ""
	})
	t.Logf("%v recreated and Ready after %s", pods, took.Round(time.Second))
	waitReady(t, ns, "my-cluster", readyTimeout)
	// The new pods mount the same claims (so the same volumes) as the old ones.
	if after := podClaims(t, ns); after != claims {
		t.Fatalf("claims changed:\nbefore %s\nafter  %s", claims, after)
	}
}

// podClaims lists each broker pod's claim and the volume bound to it.
func podClaims(t *testing.T, ns string) string {
	t.Helper()
	return kubectl(t, "get", "pvc", "-n", ns, "--sort-by=.metadata.name",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.volumeName} {end}`)
}

// TestRecovery: broker pods deleted by hand come back through the StatefulSet
// and rejoin with their data (records produced before are still there), one
// pod (under an acks=all load and a consumer group that must see no error and
// lose nothing) and then all three at once; `kubectl scale --replicas=4` adds a fourth
// broker that joins the cluster.
func TestRecovery(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s4-recovery")
	plain := deployExample(t, ns)

	// Auto-created with the cluster's defaultReplicationFactor 3.
	mustRunPod(t, ns, "produce-1", kcatImage, 3*time.Minute, "--command", "sh", "-c", kcatRoundTrip(ns, "kept", 1, 100))
	wantRecords(t, kcatConsume(t, ns, "consume-1", "kept"), 1, 100)

	// One broker pod deleted under load: its graceful stop hands its leaderships
	// over, so neither the acks=all producer nor the group sees an error.
	load := startLoad(t, plain, "load-1")
	deleteAndWaitBack(t, ns, "my-cluster-broker-1")
	load.stop(t).requireNoErrors(t, "load while broker-1's pod was deleted")
	wantRecords(t, kcatConsume(t, ns, "consume-2", "kept"), 1, 100)

	deleteAndWaitBack(t, ns, "my-cluster-broker-0", "my-cluster-broker-1", "my-cluster-broker-2")
	wantRecords(t, kcatConsume(t, ns, "consume-3", "kept"), 1, 100)
	// And the cluster still takes writes.
	mustRunPod(t, ns, "produce-2", kcatImage, 3*time.Minute, "--command", "sh", "-c", kcatRoundTrip(ns, "kept", 101, 150))
	wantRecords(t, kcatConsume(t, ns, "consume-4", "kept"), 1, 150)

	// The scale subresource: a fourth broker joins.
	kubectl(t, "scale", "-n", ns, "kafkacluster/my-cluster", "--replicas=4")
	took := waitReady(t, ns, "my-cluster", readyTimeout)
	t.Logf("four brokers Ready %s after kubectl scale", took.Round(time.Second))
	attempt := 0
	kubetest.Eventually(t, 2*time.Minute, "metadata lists 4 brokers", func() (bool, string) {
		attempt++
		meta := mustRunPod(t, ns, fmt.Sprintf("metadata-%d", attempt), kcatImage, 2*time.Minute, "-b", bootstrap(ns), "-L")
		return len(brokerIDs(meta)) == 4, meta
	})
	if got := kubectl(t, "get", "statefulset", "my-cluster-broker", "-n", ns, "-o", "jsonpath={.spec.replicas}"); got != "4" {
		t.Fatalf("StatefulSet replicas %s, want 4", got)
	}
}
