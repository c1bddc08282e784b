package scenarios

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

const (
	example = "deploy/examples/kafka-cluster.yaml"
	// How long a KafkaCluster may take to become Ready: the README's tour
	// waits 10m; three brokers take about a minute on the sandbox.
	readyTimeout = 6 * time.Minute
)

// smallCluster is a one-broker KafkaCluster manifest (cheap for scenarios that
// are about the operator rather than the brokers).
func smallCluster(name, storage string) string {
	s := "type: ephemeral"
	if storage == "persistent-claim" {
		s = "type: persistent-claim\n    size: 1Gi"
	}
	return fmt.Sprintf(`apiVersion: kafka.strom.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: %s
spec:
  replicas: 1
  storage:
    %s
`, name, s)
}

// waitReady waits for the KafkaCluster's Ready condition, status.readyReplicas
// equal to spec.replicas and status.observedGeneration equal to
// metadata.generation (the status describes the current spec).
func waitReady(t *testing.T, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	return kubetest.Eventually(t, timeout, "kafkacluster/"+name+" Ready", func() (bool, string) {
		out, err := jsonpath("-n", ns, "kafkacluster", name,
			`{.spec.replicas} {.status.readyReplicas} {.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}`)
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(out)
		return len(f) >= 5 && f[0] == f[1] && f[2] == f[3] && f[4] == "True",
			"replicas readyReplicas generation observedGeneration Ready reason: " + out
	})
}

// condition returns status, reason and message of a KafkaCluster condition.
func condition(ns, name, kind string) (string, string, string) {
	out, _ := jsonpath("-n", ns, "kafkacluster", name,
		fmt.Sprintf(`{.status.conditions[?(@.type=="%s")].status}|{.status.conditions[?(@.type=="%[1]s")].reason}|{.status.conditions[?(@.type=="%[1]s")].message}`, kind))
	parts := strings.SplitN(out, "|", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// resourceVersion and generation of an object.
func versions(t *testing.T, ns, ref string) (string, int) {
	t.Helper()
	out, err := jsonpath("-n", ns, ref, "{.metadata.resourceVersion} {.metadata.generation}")
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	f := strings.Fields(out)
	gen, _ := strconv.Atoi(f[1])
	return f[0], gen
}

// bootstrap is the in-cluster bootstrap address the README promises.
func bootstrap(ns string) string { return "my-cluster-bootstrap." + ns + ".svc:9092" }

// brokerIDs are the broker ids `kcat -L` lists ("  broker 0 at ...").
func brokerIDs(metadata string) []string {
	var ids []string
	for _, line := range strings.Split(metadata, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "broker" && f[2] == "at" {
			ids = append(ids, f[1])
		}
	}
	return ids
}
