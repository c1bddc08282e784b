package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestGitOps: what a GitOps tool sees. A settled KafkaCluster's
// resourceVersion (and its StatefulSet's) stays the same for a minute: no
// status churn; `kubectl apply` of the same manifest says unchanged and
// changes nothing; observedGeneration follows spec changes.
func TestGitOps(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s5-gitops")
	manifest := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(manifest, []byte(smallCluster("steady", "ephemeral")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "-f", manifest)
	waitReady(t, ns, "steady", readyTimeout)
	// Settled means the operator has also heard from the brokers: the UnderReplicated
	// condition goes from Unknown to False once, at a reconcile after Ready. From then
	// on nothing may change.
	kubetest.Eventually(t, 2*time.Minute, "UnderReplicated known", func() (bool, string) {
		status, reason, message := condition(ns, "steady", "UnderReplicated")
		return status == "False", status + " " + reason + ": " + message
	})

	rv, gen := versions(t, ns, "kafkacluster/steady")
	stsRV, _ := versions(t, ns, "statefulset/steady-broker")
	// A window, not a sleep: any write in it fails at once.
	start := time.Now()
	for time.Since(start) < time.Minute {
		if now, _ := versions(t, ns, "kafkacluster/steady"); now != rv {
			t.Fatalf("kafkacluster/steady changed after %s with nothing to do (resourceVersion %s -> %s):\n%s",
				time.Since(start).Round(time.Second), rv, now, kubectl(t, "get", "kafkacluster", "steady", "-n", ns, "-o", "yaml"))
		}
		if now, _ := versions(t, ns, "statefulset/steady-broker"); now != stsRV {
			t.Fatalf("statefulset/steady-broker changed after %s with nothing to do (resourceVersion %s -> %s)",
				time.Since(start).Round(time.Second), stsRV, now)
		}
		time.Sleep(2 * time.Second)
	}

	out := kubectl(t, "apply", "-n", ns, "-f", manifest)
	if !strings.Contains(out, "kafkacluster.kafka.strom.dev/steady unchanged") {
		t.Fatalf("re-applying the same manifest: %s", out)
	}
	if now, _ := versions(t, ns, "kafkacluster/steady"); now != rv {
		t.Fatalf("re-applying the same manifest changed resourceVersion %s -> %s", rv, now)
	}

	// A spec change: generation moves, and the status follows it.
	kubectl(t, "patch", "-n", ns, "kafkacluster", "steady", "--type=merge", "-p", `{"spec":{"config":{"log.retention.hours":100}}}`)
	_, gen2 := versions(t, ns, "kafkacluster/steady")
	if gen2 != gen+1 {
		t.Fatalf("generation %d after a spec change, want %d", gen2, gen+1)
	}
	kubetest.Eventually(t, 2*time.Minute, "observedGeneration follows the spec change", func() (bool, string) {
		got, _ := jsonpath("-n", ns, "kafkacluster", "steady", "{.status.observedGeneration}")
		return got == fmt.Sprint(gen2), "observedGeneration " + got
	})
	waitReady(t, ns, "steady", readyTimeout)
	// A label is not spec: generation stays, and so does observedGeneration.
	kubectl(t, "label", "-n", ns, "kafkacluster", "steady", "team=payments")
	if _, g := versions(t, ns, "kafkacluster/steady"); g != gen2 {
		t.Fatalf("a label changed generation to %d", g)
	}
}
