package scenarios

import (
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestBadInput: each spec the API server admits but the operator's own
// validation refuses (operator/src/cluster/validate.rs) gets Ready=False with
// that check's reason, an Event, and nothing applied (no StatefulSet, no owned
// object at all); meanwhile the operator keeps serving a good cluster in the
// same namespace, and a refused cluster whose spec is fixed becomes Ready.
func TestBadInput(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s8-bad-input")
	bad := []struct{ name, spec, reason string }{
		{"rf-too-high", "replicas: 1\n  defaultReplicationFactor: 3", "ReplicationFactorTooHigh"},
		{"isr-too-high", "replicas: 3\n  config: {min.insync.replicas: 3}", "MinInsyncReplicasTooHigh"},
		{"unknown-auth", "replicas: 1\n  listeners:\n  - {name: plain, port: 9092, authentication: {type: plain}}", "UnknownAuthenticationType"},
		{"port-clash", "replicas: 1\n  listeners:\n  - {name: plain, port: 9093}", "ListenerPortClash"},
		{"reserved-name", "replicas: 1\n  listeners:\n  - {name: replication, port: 9092}", "ReservedListenerName"},
		{"nested-config", "replicas: 1\n  config: {log.retention: {hours: 1}}", "InvalidConfigValue"},
		{"blank-rack", "replicas: 1\n  rack: {topologyKey: \" \"}", "InvalidRack"},
	}
	for _, b := range bad {
		kubectlIn(t, "apiVersion: kafka.strom.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: "+b.name+
			"\nspec:\n  storage: {type: ephemeral}\n  "+b.spec+"\n", "apply", "-n", ns, "-f", "-")
	}
	kubectlIn(t, smallCluster("good", "ephemeral"), "apply", "-n", ns, "-f", "-")

	for _, b := range bad {
		kubetest.Eventually(t, 2*time.Minute, b.name+" Ready=False "+b.reason, func() (bool, string) {
			status, reason, message := condition(ns, b.name, "Ready")
			return status == "False" && reason == b.reason, status + " " + reason + ": " + message
		})
		_, _, message := condition(ns, b.name, "Ready")
		t.Logf("%s: Ready=False %s: %s", b.name, b.reason, message)
	}
	waitReady(t, ns, "good", readyTimeout)

	// Nothing half-applied: checked after the good cluster is Ready, so the
	// operator has had every chance to write.
	for _, b := range bad {
		if out, err := run("", "kubectl", "get", "statefulset", b.name+"-broker", "-n", ns); err == nil {
			t.Errorf("%s: a StatefulSet exists:\n%s", b.name, out)
		}
		uid := kubectl(t, "get", "kafkacluster", b.name, "-n", ns, "-o", "jsonpath={.metadata.uid}")
		if objs := owned(t, ns, uid); len(objs) > 0 {
			t.Errorf("%s: objects applied for a refused spec: %v", b.name, objs)
		}
		events := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+b.name,
			"-o", `jsonpath={range .items[*]}{.type}/{.reason} {end}`)
		if !strings.Contains(events, "Warning/"+b.reason) {
			t.Errorf("%s: no Warning event %s, events: %s", b.name, b.reason, events)
		}
	}

	// Fixing a refused spec lets the operator apply it.
	kubectl(t, "patch", "-n", ns, "kafkacluster", "rf-too-high", "--type=merge", "-p", `{"spec":{"defaultReplicationFactor":1}}`)
	waitReady(t, ns, "rf-too-high", readyTimeout)
}
