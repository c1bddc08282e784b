package scenarios

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

const (
	securedExample = "deploy/examples/secured"
	securedCluster = "secure-cluster"
)

// TestSecuredCluster: deploy/examples/secured (a SASL_SSL listener with
// SCRAM-SHA-512, an mTLS listener, Kafka's ACL authorizer) becomes Ready with
// the operator's own certificates; its KafkaTopic and two KafkaUsers are
// reconciled by the operator over mutual TLS; Kafka's own clients, run as pods
// with the Secrets the operator generated, produce and consume where the
// users' ACLs allow and get TOPIC_AUTHORIZATION_FAILED where not; a change of
// ACLs in the resource changes what the user may do; deleting the user
// revokes its access.
func TestSecuredCluster(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s13-secured")
	kubectl(t, "apply", "-n", ns, "-k", path(securedExample))
	took := waitReady(t, ns, securedCluster, readyTimeout)
	t.Logf("secured cluster Ready after %s", took.Round(time.Second))
	waitUser(t, ns, "payments-app")
	waitUser(t, ns, "reporter")
	waitTopicReady(t, ns, "payments")

	// Client configurations as a user writes them from the generated Secrets.
	jaas := secretValue(t, ns, "payments-app", "sasl.jaas.config")
	if !strings.Contains(jaas, `username="payments-app"`) {
		t.Fatalf("sasl.jaas.config does not name the user: %s", jaas)
	}
	p12Password := secretValue(t, ns, "reporter", "user.password")
	clientConfig(t, ns, "scram-client", fmt.Sprintf(`security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=%s
ssl.truststore.type=PEM
ssl.truststore.location=/etc/ca/ca.crt
`, jaas))
	clientConfig(t, ns, "tls-client", fmt.Sprintf(`security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/user/user.p12
ssl.keystore.password=%s
ssl.truststore.type=PEM
ssl.truststore.location=/etc/ca/ca.crt
`, p12Password))
	scram := securedBootstrap(ns, 9094)
	mtls := securedBootstrap(ns, 9095)

	// The SCRAM user produces to payments; the TLS user reads it back.
	out := clientPod(t, ns, "produce-payments", "scram-client", "",
		"kafka-verifiable-producer", "--bootstrap-server", scram, "--topic", "payments",
		"--max-messages", "100", "--acks", "-1", "--producer.config", "/etc/client/client.properties")
	if !strings.Contains(out, `"acked":100`) {
		t.Fatalf("payments-app could not produce to payments:\n%s", tail(out, 8))
	}
	out = clientPod(t, ns, "consume-payments", "tls-client", "reporter",
		"kafka-console-consumer", "--bootstrap-server", mtls, "--topic", "payments",
		"--group", "reporter", "--from-beginning", "--max-messages", "100", "--timeout-ms", "60000",
		"--consumer.config", "/etc/client/client.properties")
	if n := countValues(out, 100); n != 100 {
		t.Fatalf("reporter read %d of the 100 records:\n%s", n, tail(out, 8))
	}

	// Not allowed: the reader writes, the writer writes elsewhere.
	out = clientPod(t, ns, "reporter-writes", "tls-client", "reporter",
		"kafka-verifiable-producer", "--bootstrap-server", mtls, "--topic", "payments",
		"--max-messages", "1", "--acks", "-1", "--producer.config", "/etc/client/client.properties")
	wantDenied(t, "reporter producing to payments", out)
	kubectlIn(t, securedTopic("audit"), "apply", "-n", ns, "-f", "-")
	waitTopicReady(t, ns, "audit")
	out = clientPod(t, ns, "produce-audit-1", "scram-client", "",
		"kafka-verifiable-producer", "--bootstrap-server", scram, "--topic", "audit",
		"--max-messages", "1", "--acks", "-1", "--producer.config", "/etc/client/client.properties")
	wantDenied(t, "payments-app producing to audit", out)

	// An ACL added in the resource lets it through.
	generation := kubectl(t, "get", "-n", ns, "kafkauser", "payments-app", "-o", "jsonpath={.metadata.generation}")
	kubectl(t, "patch", "-n", ns, "kafkauser", "payments-app", "--type=json", "-p",
		`[{"op":"add","path":"/spec/authorization/acls/-","value":{"resource":{"type":"topic","name":"audit"},"operations":["Write","Describe"]}}]`)
	kubetest.Eventually(t, 2*time.Minute, "payments-app reconciled after its ACL change", func() (bool, string) {
		observed, _ := jsonpath("-n", ns, "kafkauser", "payments-app", "{.status.observedGeneration}")
		return observed != "" && observed != generation && userReady(ns, "payments-app"), "observedGeneration " + observed
	})
	out = clientPod(t, ns, "produce-audit-2", "scram-client", "",
		"kafka-verifiable-producer", "--bootstrap-server", scram, "--topic", "audit",
		"--max-messages", "10", "--acks", "-1", "--producer.config", "/etc/client/client.properties")
	if !strings.Contains(out, `"acked":10`) {
		t.Fatalf("payments-app could not produce to audit after its ACL was added:\n%s", tail(out, 8))
	}

	// Deleting the user removes its credential: the same configuration no longer logs in.
	kubectl(t, "delete", "-n", ns, "kafkauser", "payments-app", "--wait", "--timeout=2m")
	out = clientPod(t, ns, "produce-deleted", "scram-client", "",
		"kafka-verifiable-producer", "--bootstrap-server", scram, "--topic", "payments",
		"--max-messages", "1", "--acks", "-1", "--producer.config", "/etc/client/client.properties")
	if strings.Contains(out, `"acked":1`) || !strings.Contains(out, "Authentication failed") {
		t.Fatalf("a deleted user still produced, or failed for another reason:\n%s", tail(out, 8))
	}
	if secrets := kubectl(t, "get", "-n", ns, "secret", "-o", "name"); strings.Contains(secrets, "secret/payments-app\n") {
		t.Fatalf("the deleted user's Secret is still there:\n%s", secrets)
	}
	t.Log("secured cluster: SCRAM and mTLS users produce and consume as their ACLs say; ACL change applied; deletion revokes")
}

// securedBootstrap is the secured example's bootstrap address on a listener port.
func securedBootstrap(ns string, port int) string {
	return fmt.Sprintf("%s-bootstrap.%s.svc:%d", securedCluster, ns, port)
}

func securedTopic(name string) string {
	return fmt.Sprintf(`apiVersion: kafka.strom.dev/v1alpha1
kind: KafkaTopic
metadata:
  name: %s
  labels: {kafka.strom.dev/cluster: %s}
spec:
  partitions: 1
  replicas: 3
`, name, securedCluster)
}

func userReady(ns, name string) bool {
	out, _ := jsonpath("-n", ns, "kafkauser", name,
		`{.status.conditions[?(@.type=="Ready")].status}|{.metadata.generation}|{.status.observedGeneration}`)
	f := strings.Split(out, "|")
	return len(f) == 3 && f[0] == "True" && f[1] != "" && f[1] == f[2]
}

// waitUser waits until the KafkaUser is Ready for its current generation.
func waitUser(t *testing.T, ns, name string) {
	t.Helper()
	kubetest.Eventually(t, 3*time.Minute, "kafkauser/"+name+" Ready", func() (bool, string) {
		out, _ := jsonpath("-n", ns, "kafkauser", name,
			`{.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}`)
		return userReady(ns, name), out
	})
}

func waitTopicReady(t *testing.T, ns, name string) {
	t.Helper()
	waitTopic(t, ns, name, "True", "", func(f topicFacts) bool { return f.topicID != "" })
}

// secretValue decodes one key of a Secret.
func secretValue(t *testing.T, ns, secret, key string) string {
	t.Helper()
	encoded := kubectl(t, "get", "-n", ns, "secret", secret, "-o",
		fmt.Sprintf("jsonpath={.data.%s}", strings.ReplaceAll(key, ".", `\.`)))
	value, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil || len(value) == 0 {
		t.Fatalf("Secret %s has no %s (%v)", secret, key, err)
	}
	return string(value)
}

// clientConfig stores a client.properties in a ConfigMap for clientPod to mount.
func clientConfig(t *testing.T, ns, name, properties string) {
	t.Helper()
	kubectl(t, "create", "configmap", name, "-n", ns, "--from-literal=client.properties="+properties)
}

// clientPod runs one of Kafka's tools in a pod with the client configuration
// ConfigMap at /etc/client, the cluster CA's Secret at /etc/ca and, when
// userSecret is given, that KafkaUser's Secret at /etc/user; it returns the
// log once the pod has finished, whatever its exit status (refusals are
// checked from the log).
func clientPod(t *testing.T, ns, name, config, userSecret, tool string, args ...string) string {
	t.Helper()
	command := []string{"/opt/kafka/bin/" + tool + ".sh"}
	command = append(command, args...)
	quoted := make([]string, len(command))
	for i, c := range command {
		quoted[i] = fmt.Sprintf("%q", c)
	}
	mounts := `    - {name: client, mountPath: /etc/client}
    - {name: ca, mountPath: /etc/ca}`
	volumes := fmt.Sprintf(`  - name: client
    configMap: {name: %s}
  - name: ca
    secret: {secretName: %s-cluster-ca-cert}`, config, securedCluster)
	if userSecret != "" {
		mounts += "\n    - {name: user, mountPath: /etc/user}"
		volumes += fmt.Sprintf("\n  - name: user\n    secret: {secretName: %s}", userSecret)
	}
	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: %s
    command: [%s]
    volumeMounts:
%s
  volumes:
%s
`, name, kafkaImage, strings.Join(quoted, ", "), mounts, volumes), "apply", "-n", ns, "-f", "-")
	var phase string
	kubetest.Eventually(t, 3*time.Minute, "pod "+name+" finishes", func() (bool, string) {
		phase, _ = jsonpath("-n", ns, "pod", name, "{.status.phase}")
		return phase == "Succeeded" || phase == "Failed", "phase " + phase
	})
	return kubectl(t, "-n", ns, "logs", name)
}

// wantDenied fails unless the tool's log shows Kafka's authorization refusal
// and no record acknowledged.
func wantDenied(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, `"acked":1`) || !strings.Contains(out, "TopicAuthorizationException") {
		t.Fatalf("%s: want TOPIC_AUTHORIZATION_FAILED and nothing acknowledged:\n%s", what, tail(out, 8))
	}
}

// countValues counts the distinct values 0..n-1 among the lines of out.
func countValues(out string, n int) int {
	seen := map[string]bool{}
	for _, v := range strings.Fields(out) {
		seen[v] = true
	}
	count := 0
	for i := 0; i < n; i++ {
		if seen[fmt.Sprint(i)] {
			count++
		}
	}
	return count
}
