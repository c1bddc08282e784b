package scenarios

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestCertificateRenewal: issue 16 §2, certificates renewed under traffic. The
// secured example (SCRAM over TLS for clients, mutual TLS for replication and
// the controller quorum) serves strom-load, authenticated as a SCRAM super
// user and trusting the cluster CA certificate as it was before any renewal (a
// copy: like any Kafka client, its truststore never changes). The cluster CA
// certificate is then renewed on demand (the force-renew annotation on its
// Secret; the default policy keeps the CA's key): the brokers get new
// certificates and reload them without a restart (issue 14: renewal needs no
// roll), a new client with the old truststore still connects, and the load
// sees no error and loses nothing.
func TestCertificateRenewal(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s15-renewal")
	secured := deploySecuredExample(t, ns)

	caSecret := "my-cluster-cluster-ca-cert"
	brokerSecret := "my-cluster-broker-certs"
	caAtStart := secretValue(t, ns, caSecret, "ca.crt")
	leafAtStart := secretValue(t, ns, brokerSecret, "broker-0.crt")
	// The clients' truststore: a copy in the loader's ConfigMap, beside a Kafka
	// client configuration that trusts only it.
	jaas := secretValue(t, ns, loaderUser, "sasl.jaas.config")
	atStart, err := json.Marshal(map[string]any{"data": map[string]string{
		"ca-at-start.crt": caAtStart,
		"client-at-start.properties": fmt.Sprintf(`security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=%s
ssl.truststore.type=PEM
ssl.truststore.location=/etc/client/ca-at-start.crt
`, jaas),
	}})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "patch", "configmap", loaderClientConfig, "-n", ns, "--type=merge", "-p", string(atStart))

	// The load trusts the copy, not the mounted Secret (a later setting wins).
	l := startLoad(t, secured, "load", "--client-config", "ssl.ca.location=/etc/client/ca-at-start.crt")
	reloads := brokerReloads(t, ns)
	pods := brokerPods(t, ns)
	if len(pods) != 3 {
		t.Fatalf("want the three broker pods, found %v", pods)
	}

	kubectl(t, "annotate", "-n", ns, "secret", caSecret, "kafka.strom.dev/force-renew=true")
	kubetest.Eventually(t, 3*time.Minute, "the cluster CA certificate renewed", func() (bool, string) {
		annotation, _ := jsonpath("-n", ns, "secret", caSecret, `{.metadata.annotations.kafka\.strom\.dev/force-renew}`)
		ca := secretValue(t, ns, caSecret, "ca.crt")
		leaf := secretValue(t, ns, brokerSecret, "broker-0.crt")
		return annotation == "" && ca != caAtStart && leaf != leafAtStart,
			fmt.Sprintf("annotation %q, ca.crt changed %v, broker-0.crt changed %v", annotation, ca != caAtStart, leaf != leafAtStart)
	})
	kubetest.Eventually(t, 3*time.Minute, "every broker reloaded its certificates", func() (bool, string) {
		now := brokerReloads(t, ns)
		for pod, n := range now {
			if n <= reloads[pod] {
				return false, fmt.Sprintf("reloads before %v, now %v", reloads, now)
			}
		}
		return len(now) == 3, fmt.Sprintf("reloads before %v, now %v", reloads, now)
	})

	// Renewal is not a restart trigger (issue 14): the brokers took their new
	// certificates as they run, so the roller has nothing to do.
	if now := brokerPods(t, ns); fmt.Sprint(now) != fmt.Sprint(pods) {
		t.Errorf("broker pods were replaced across the renewal:\nbefore %v\nafter  %v", pods, now)
	}

	// A client that connects now, trusting only the CA certificate of before.
	out, _ := runPodWith(t, ns, "produce-after-renewal", kafkaImage, 3*time.Minute, secured.podFlags(t, "produce-after-renewal"),
		"--command", "/opt/kafka/bin/kafka-verifiable-producer.sh", "--bootstrap-server", secured.bootstrap(),
		"--topic", "after-renewal", "--max-messages", "100", "--acks", "-1",
		"--producer.config", "/etc/client/client-at-start.properties")
	if !strings.Contains(out, `"acked":100`) {
		t.Fatalf("a client with the truststore of before the renewal could not produce:\n%s", tail(out, 8))
	}

	report := l.stop(t)
	if report.Error != "" {
		// librdkafka reports connection failures only in its log: show it.
		logs, _ := run("", "kubectl", "-n", ns, "logs", "load", "--tail=60")
		t.Logf("strom-load's log:\n%s", logs)
	}
	report.requireNoErrors(t, "load across the cluster CA renewal")
}

// brokerReloads counts, per broker pod, the log lines saying a TLS certificate
// was reloaded.
func brokerReloads(t *testing.T, ns string) map[string]int {
	t.Helper()
	out := kubectl(t, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=strom-broker",
		"-o", "jsonpath={.items[*].metadata.name}")
	counts := map[string]int{}
	for _, pod := range strings.Fields(out) {
		logs, _ := run("", "kubectl", "-n", ns, "logs", pod, "--all-containers")
		counts[pod] = strings.Count(logs, "TLS certificate reloaded")
	}
	return counts
}
