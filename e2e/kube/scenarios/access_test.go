package scenarios

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// access is how a scenario's clients reach my-cluster in its namespace: as
// anyone over the example's plaintext listener, or, on the secured variant of
// the example, with SCRAM-SHA-512 over TLS as the super user "loader". On the
// secured variant the brokers also replicate and run their controller quorum
// over mutual TLS, and the operator reaches them with its own certificate, so a
// scenario run on it checks the operator's day-2 work on a secured cluster.
type access struct {
	ns      string
	secured bool
}

// The secured variant: the example with one listener (SCRAM over TLS) and
// Kafka's authorizer, whose super user is the KafkaUser "loader".
const (
	securedListenerPort = 9094
	loaderUser          = "loader"
	// The ConfigMap holding the loader's client configurations: client.properties
	// for Kafka's tools (--command-config) and kcat.conf (KCAT_CONFIG).
	loaderClientConfig = "loader-client"
	// A merge patch: it replaces the example's listeners.
	securedExamplePatch = `{"spec":{"listeners":[{"name":"scram","port":%d,"type":"internal","tls":true,` +
		`"authentication":{"type":"scram-sha-512"}}],"authorization":{"type":"simple","superUsers":[%q]}}}`
	loaderKafkaUser = `apiVersion: kafka.strom.dev/v1alpha1
kind: KafkaUser
metadata:
  name: loader
  labels: {kafka.strom.dev/cluster: my-cluster}
spec:
  authentication:
    type: scram-sha-512
`
)

// deployExample applies deploy/examples/kafka-cluster.yaml and waits until it is Ready.
func deployExample(t *testing.T, ns string) access {
	t.Helper()
	kubectl(t, "apply", "-n", ns, "-f", path(example))
	waitReady(t, ns, "my-cluster", readyTimeout)
	return access{ns: ns}
}

// deploySecuredExample applies the example patched to its secured variant (with
// kubectl's own local patch, so the example stays the one source) and the
// KafkaUser "loader", waits until both are Ready, and writes the loader's
// client configurations from the Secrets the operator generated.
func deploySecuredExample(t *testing.T, ns string) access {
	t.Helper()
	cluster := kubectl(t, "patch", "--local", "-f", path(example), "--type=merge", "-p",
		fmt.Sprintf(securedExamplePatch, securedListenerPort, loaderUser), "-o", "yaml")
	kubectlIn(t, cluster+"\n---\n"+loaderKafkaUser, "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "my-cluster", readyTimeout)
	waitUser(t, ns, loaderUser)
	password := secretValue(t, ns, loaderUser, "password")
	jaas := secretValue(t, ns, loaderUser, "sasl.jaas.config")
	kubectl(t, "create", "configmap", loaderClientConfig, "-n", ns,
		"--from-literal=client.properties="+fmt.Sprintf(`security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=%s
ssl.truststore.type=PEM
ssl.truststore.location=/etc/ca/ca.crt
`, jaas),
		"--from-literal=kcat.conf="+fmt.Sprintf(`security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=%s
sasl.password=%s
ssl.ca.location=/etc/ca/ca.crt
`, loaderUser, password))
	return access{ns: ns, secured: true}
}

// bootstrap is the cluster's in-cluster bootstrap address on the listener the clients use.
func (a access) bootstrap() string {
	if a.secured {
		return fmt.Sprintf("my-cluster-bootstrap.%s.svc:%d", a.ns, securedListenerPort)
	}
	return bootstrap(a.ns)
}

// podFlags are the `kubectl run` flags that give pod NAME the loader's client
// configurations (/etc/client, KCAT_CONFIG), the cluster CA certificate
// (/etc/ca) and the loader's Secret (/etc/user); none on the plain example.
func (a access) podFlags(t *testing.T, name string) []string {
	t.Helper()
	if !a.secured {
		return nil
	}
	return podOverrides(t, name, map[string]string{"KCAT_CONFIG": "/etc/client/kcat.conf"},
		volume{"client", "/etc/client", "configMap", loaderClientConfig},
		volume{"ca", "/etc/ca", "secret", "my-cluster-cluster-ca-cert"},
		volume{"user", "/etc/user", "secret", loaderUser})
}

// volume is a ConfigMap or Secret mounted into a `kubectl run` pod.
type volume struct {
	name, mountPath string
	kind            string // "configMap" or "secret"
	source          string // the ConfigMap's or Secret's name
}

// podOverrides are `kubectl run` flags that add environment variables and
// volumes to the pod NAME's one container (kubectl names it after the pod).
func podOverrides(t *testing.T, name string, env map[string]string, volumes ...volume) []string {
	t.Helper()
	var envVars, mounts, sources []any
	for k, v := range env {
		envVars = append(envVars, map[string]any{"name": k, "value": v})
	}
	for _, v := range volumes {
		mounts = append(mounts, map[string]any{"name": v.name, "mountPath": v.mountPath})
		ref := map[string]any{"name": v.source}
		if v.kind == "secret" {
			ref = map[string]any{"secretName": v.source}
		}
		sources = append(sources, map[string]any{"name": v.name, v.kind: ref})
	}
	container := map[string]any{"name": name, "volumeMounts": mounts}
	if len(envVars) > 0 {
		container["env"] = envVars
	}
	overrides, err := json.Marshal(map[string]any{"spec": map[string]any{
		"containers": []any{container},
		"volumes":    sources,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--override-type=strategic", "--overrides=" + string(overrides)}
}

// kafkaTool runs one of Kafka's tools (e.g. "kafka-topics") against the
// cluster, authenticated on the secured variant, and returns its output; the
// test fails if the tool does.
func (a access) kafkaTool(t *testing.T, pod, tool string, args ...string) string {
	t.Helper()
	command := []string{"--command", "/opt/kafka/bin/" + tool + ".sh", "--bootstrap-server", a.bootstrap()}
	if a.secured {
		// Before ARGS: kafka-metadata-quorum takes it only before its subcommand.
		command = append(command, "--command-config", "/etc/client/client.properties")
	}
	command = append(command, args...)
	out, ok := runPodWith(t, a.ns, pod, kafkaImage, 3*time.Minute, a.podFlags(t, pod), command...)
	if !ok {
		t.Fatalf("pod %s (%s %s) failed:\n%s", pod, tool, strings.Join(args, " "), out)
	}
	return out
}

// kcat runs kcat against the cluster with ARGS after `-b BOOTSTRAP`; it
// returns the output and whether kcat succeeded.
func (a access) kcat(t *testing.T, pod string, args ...string) (string, bool) {
	t.Helper()
	return runPodWith(t, a.ns, pod, kcatImage, 2*time.Minute, a.podFlags(t, pod), append([]string{"-b", a.bootstrap()}, args...)...)
}

// loadFlags are strom-load's client settings for the secured variant: SCRAM
// as the loader (its password read from the mounted Secret), trusting the cluster CA.
func (a access) loadFlags() []string {
	if !a.secured {
		return nil
	}
	return []string{
		"--client-config", "security.protocol=SASL_SSL",
		"--client-config", "sasl.mechanism=SCRAM-SHA-512",
		"--client-config", "sasl.username=" + loaderUser,
		"--client-config-file", "sasl.password=/etc/user/password",
		"--client-config", "ssl.ca.location=/etc/ca/ca.crt",
	}
}
