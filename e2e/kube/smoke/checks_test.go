package smoke

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"strom/e2e/kube/internal/kubetest"
)

func (s sandbox) readyz(t *testing.T) {
	if out := s.Kubectl(t, "get", "--raw", "/readyz"); strings.TrimSpace(out) != "ok" {
		t.Fatalf("/readyz answered %q", out)
	}
	// The server reports the release the binaries were built from.
	out := s.Kubectl(t, "version", "-o", "json")
	var v struct {
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	if v.Server.GitVersion != "v1.37.2" {
		t.Fatalf("server version %q, want v1.37.2", v.Server.GitVersion)
	}
}

// crds applies the operator's CRDs and checks that the server's own
// OpenAPI (what `kubectl explain` reads) carries every spec field of the
// KafkaCluster schema with its description.
func (s sandbox) crds(t *testing.T) {
	s.Kubectl(t, "apply", "-f", "deploy/crds/")
	s.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/kafkaclusters.kafka.strom.dev", "crd/kafkatopics.kafka.strom.dev", "crd/kafkausers.kafka.strom.dev")

	fields := specFields(t, filepath.Join(kubetest.Repo, "deploy/crds/kafkaclusters.kafka.strom.dev.yaml"))
	if len(fields) == 0 {
		t.Fatal("no spec fields in the KafkaCluster CRD")
	}
	// The OpenAPI the server publishes for a new CRD can trail `Established`
	// by a moment, so ask until explain shows the fields.
	kubetest.Eventually(t, time.Minute, "kubectl explain kafkacluster.spec", func() (bool, string) {
		out, err := s.Run("kubectl", "explain", "kafkacluster.spec")
		if err != nil {
			return false, err.Error()
		}
		for name, desc := range fields {
			if !strings.Contains(out, name) || !strings.Contains(out, desc) {
				return false, "field " + name + " (" + desc + ") missing in:\n" + out
			}
		}
		return true, ""
	})
}

// specFields maps each spec property of a CRD file to the first line of its
// description, the part explain prints unwrapped.
func specFields(t *testing.T, path string) map[string]string {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								Description string `json:"description"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	fields := map[string]string{}
	for _, v := range crd.Spec.Versions {
		for name, p := range v.Schema.OpenAPIV3Schema.Properties["spec"].Properties {
			first, _, _ := strings.Cut(p.Description, "\n")
			// explain wraps long lines; the first few words are never split.
			words := strings.Fields(first)
			if len(words) > 4 {
				words = words[:4]
			}
			fields[name] = strings.Join(words, " ")
		}
	}
	return fields
}

// serviceAccount: the controller-manager's serviceaccount and root-CA
// publisher controllers fill a new namespace.
func (s sandbox) serviceAccount(t *testing.T) {
	s.Kubectl(t, "create", "namespace", "smoke")
	kubetest.Eventually(t, time.Minute, "default ServiceAccount in namespace smoke", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "serviceaccount", "default", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "serviceaccount/default", out
	})
	kubetest.Eventually(t, time.Minute, "kube-root-ca.crt ConfigMap in namespace smoke", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}")
		return err == nil && strings.Contains(out, "BEGIN CERTIFICATE"), out
	})
}

const statefulSet = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: smoke
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: smoke
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: smoke
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      # No node has this label, so the scheduler leaves web-0 Pending even
      # with the node agent running.
      nodeSelector: {strom.dev/smoke: no-such-node}
      containers:
      - name: web
        image: strom:smoke
`

// statefulSet: the StatefulSet controller makes web-0, the scheduler finds
// no node matching its nodeSelector (so it stays Pending, unbound), the endpointslice and
// disruption controllers account for it, and deleting the StatefulSet lets
// the garbage collector remove the pod through its owner reference.
func (s sandbox) statefulSet(t *testing.T) {
	manifest := filepath.Join(s.Dir, "statefulset.yaml")
	if err := os.WriteFile(manifest, []byte(statefulSet), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Kubectl(t, "apply", "-f", manifest)
	kubetest.Eventually(t, time.Minute, "web-0 Pending and Unschedulable", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "pod", "web-0", "-o",
			`jsonpath={.status.phase}/{.spec.nodeName}/{.status.conditions[?(@.type=="PodScheduled")].reason}`)
		return err == nil && out == "Pending//Unschedulable", out
	})
	// OrderedReady: web-1 waits for web-0, which never runs without a node.
	if out, err := s.Run("kubectl", "-n", "smoke", "get", "pod", "web-1"); err == nil {
		t.Fatalf("web-1 exists before web-0 is ready:\n%s", out)
	}
	kubetest.Eventually(t, time.Minute, "EndpointSlice of Service web", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "name")
		return err == nil && strings.HasPrefix(out, "endpointslice.discovery.k8s.io/web-"), out
	})
	// The disruption controller counts web-0 as expected but not healthy.
	kubetest.Eventually(t, time.Minute, "PodDisruptionBudget status", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "pdb", "web", "-o",
			"jsonpath={.status.expectedPods}/{.status.currentHealthy}/{.status.disruptionsAllowed}")
		return err == nil && out == "1/0/0", out
	})
	s.Kubectl(t, "-n", "smoke", "delete", "statefulset", "web", "--cascade=background")
	kubetest.Eventually(t, time.Minute, "garbage collector deletes web-0", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "pods", "-l", "app=web", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", out
	})
}

const volumes = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: smoke-pv
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /tmp/strom-kube-smoke-pv}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: smoke
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources:
    requests: {storage: 1Gi}
`

// volumes: the persistent-volume binder binds a claim to a matching volume
// (no pod and no node needed: the volume is only an API object here).
func (s sandbox) volumes(t *testing.T) {
	manifest := filepath.Join(s.Dir, "volumes.yaml")
	if err := os.WriteFile(manifest, []byte(volumes), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Kubectl(t, "apply", "-f", manifest)
	kubetest.Eventually(t, time.Minute, "claim data bound to smoke-pv", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "smoke", "get", "pvc", "data", "-o", "jsonpath={.status.phase}/{.spec.volumeName}")
		return err == nil && out == "Bound/smoke-pv", out
	})
}

// helmInstall installs charts/strom-operator for real: its RBAC, service
// account and Deployment are accepted by the server, and the Deployment's
// controllers make the operator's pods, which the scheduler binds to the node.
func (s sandbox) helmInstall(t *testing.T) {
	// A server-side dry run creates nothing, so the namespace must exist.
	s.Kubectl(t, "create", "namespace", "strom-system")
	out, err := s.Run("helm", "install", "strom", "charts/strom-operator",
		"--namespace", "strom-system", "--dry-run=server")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kind: Deployment") {
		t.Fatalf("dry run rendered no Deployment:\n%s", out)
	}
	if _, err := s.Run("helm", "install", "strom", "charts/strom-operator", "--namespace", "strom-system"); err != nil {
		t.Fatal(err)
	}
	out = s.Kubectl(t, "-n", "strom-system", "get", "deployment,serviceaccount,role,rolebinding", "-o", "name")
	t.Logf("installed:\n%s", out)
	if !strings.Contains(out, "deployment.apps/") {
		t.Fatalf("no Deployment after helm install:\n%s", out)
	}
	// Whether the operator then runs depends on target/ holding its binary
	// (the node agent's image table); that it is created and bound to the
	// node does not.
	kubetest.Eventually(t, time.Minute, "operator pods created by the Deployment and bound to the node", func() (bool, string) {
		out, err := s.Run("kubectl", "-n", "strom-system", "get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}")
		nodes := strings.Fields(out)
		for _, n := range nodes {
			if n != "sandbox-node" {
				return false, out
			}
		}
		return err == nil && len(nodes) > 0, out
	})
	if out, err := s.Run("helm", "list", "-n", "strom-system", "-o", "json"); err != nil || !strings.Contains(out, `"status":"deployed"`) {
		t.Fatalf("helm list: %v\n%s", err, out)
	}
}
