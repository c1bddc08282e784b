package scenarios

import (
	"strings"
	"testing"
)

// TestCRDs: the CRDs as the real API server sees them. `kubectl explain`
// shows the field docs from crds/; specs that break the schema or a CEL rule
// (x-kubernetes-validations in crds/kafkaclusters.kafka.strom.dev.yaml) are
// refused by the server with the rule's message; the printer columns print.
func TestCRDs(t *testing.T) {
	t.Parallel()      // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t) // installs the CRDs (deploy/crds)
	ns := namespace(t, "s2-crds")

	explain := kubectl(t, "explain", "kafkacluster.spec")
	for _, want := range []string{
		"A Kafka-compatible cluster of strom-broker pods, run as one StatefulSet.",
		"replicas", "-required-", "listeners", "storage", "defaultReplicationFactor", "minInsyncReplicas",
	} {
		if !strings.Contains(explain, want) {
			t.Errorf("kubectl explain kafkacluster.spec lacks %q:\n%s", want, explain)
		}
	}
	explain = kubectl(t, "explain", "kafkacluster.spec.storage.type")
	for _, want := range []string{"ephemeral", "persistent-claim"} {
		if !strings.Contains(explain, want) {
			t.Errorf("kubectl explain kafkacluster.spec.storage.type lacks %q:\n%s", want, explain)
		}
	}

	refused := []struct{ name, spec, message string }{
		// CEL rules, with their messages.
		{"isr-above-rf", "replicas: 3\n  defaultReplicationFactor: 2\n  minInsyncReplicas: 3",
			"minInsyncReplicas cannot exceed defaultReplicationFactor"},
		{"same-names", "replicas: 1\n  listeners:\n  - {name: plain, port: 9092}\n  - {name: plain, port: 9094}",
			"listener names must be unique"},
		{"same-ports", "replicas: 1\n  listeners:\n  - {name: plain, port: 9092}\n  - {name: other, port: 9092}",
			"listener ports must be unique"},
		{"no-size", "replicas: 1\n  storage: {type: persistent-claim}",
			"persistent-claim storage needs a size"},
		// The structural schema.
		{"no-brokers", "replicas: 0", "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"},
		{"no-replicas", "storage: {type: ephemeral}", "spec.replicas: Required value"},
		{"bad-type", "replicas: 1\n  listeners:\n  - {name: plain, port: 9092, type: ingress}",
			`spec.listeners[0].type: Unsupported value: "ingress"`},
		{"bad-name", "replicas: 1\n  listeners:\n  - {name: Plain_1, port: 9092}",
			"spec.listeners[0].name in body should match '^[a-z][a-z0-9]*$'"},
		{"low-port", "replicas: 1\n  listeners:\n  - {name: plain, port: 80}",
			"spec.listeners[0].port in body should be greater than or equal to 1024"},
	}
	for _, c := range refused {
		manifest := "apiVersion: kafka.strom.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: " + c.name + "\nspec:\n  " + c.spec + "\n"
		out, err := run(manifest, "kubectl", "apply", "-n", ns, "-f", "-")
		if err == nil {
			t.Errorf("%s: the API server accepted\n%s", c.name, manifest)
			continue
		}
		if !strings.Contains(out, c.message) {
			t.Errorf("%s: refused without %q:\n%s", c.name, c.message, out)
		}
	}
	if out, _ := run("", "kubectl", "get", "kafkaclusters", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("refused specs left objects: %s", out)
	}

	// Transition rule: the storage type cannot change.
	kubectlIn(t, smallCluster("fixed", "ephemeral"), "apply", "-n", ns, "-f", "-")
	out, err := run(`{"spec":{"storage":{"type":"persistent-claim","size":"1Gi"}}}`, "kubectl", "patch", "-n", ns,
		"kafkacluster", "fixed", "--type=merge", "--patch-file=/dev/stdin")
	if err == nil || !strings.Contains(out, "storage type is immutable") {
		t.Errorf("changing storage.type: want refusal with \"storage type is immutable\", got err=%v:\n%s", err, out)
	}

	// Unknown fields are pruned by the structural schema (kubectl's own
	// field validation would refuse them first, so turn that off).
	kubectlIn(t, "apiVersion: kafka.strom.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: pruned\nspec:\n  replicas: 1\n  storage: {type: ephemeral}\n  noSuchField: 1\n",
		"apply", "-n", ns, "--validate=false", "-f", "-")
	if spec := kubectl(t, "get", "kafkacluster", "pruned", "-n", ns, "-o", "jsonpath={.spec}"); strings.Contains(spec, "noSuchField") {
		t.Errorf("noSuchField was not pruned: %s", spec)
	}

	// The printer columns, on a cluster that has not reported yet or has.
	table := kubectl(t, "get", "kafkaclusters", "-n", ns)
	header := strings.Fields(strings.SplitN(table, "\n", 2)[0])
	if strings.Join(header, " ") != "NAME DESIRED READY VERSION STATUS AGE" {
		t.Errorf("kubectl get kafkaclusters columns %v:\n%s", header, table)
	}
	if !strings.Contains(table, "fixed") || !strings.Contains(table, "pruned") {
		t.Errorf("kubectl get kafkaclusters misses a cluster:\n%s", table)
	}
}
