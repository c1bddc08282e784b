package nodetest

import (
	"bufio"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// nodeReady: the agent's Node is Ready with the pod CIDR and address it
// reports, its Lease in kube-node-lease is renewed, and its credentials are
// a node's: the Node authorizer refuses it what its pods do not use.
func (s sandbox) nodeReady(t *testing.T) {
	s.waitJSONPath(t, "", "node/sandbox-node", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	first, err := s.jsonpath("kube-node-lease", "lease/sandbox-node", "{.spec.renewTime}")
	if err != nil || first == "" {
		t.Fatalf("lease: %v %s", err, first)
	}
	kubetest.Eventually(t, 30*time.Second, "lease renewed", func() (bool, string) {
		out, err := s.jsonpath("kube-node-lease", "lease/sandbox-node", "{.spec.renewTime}")
		return err == nil && out != first, out
	})
	nodeKubeconfig := filepath.Join(s.Dir, "node.kubeconfig")
	out, err := s.run("--kubeconfig", nodeKubeconfig, "-n", "kube-system", "get", "secrets")
	if err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("the node's credentials may list secrets (err %v):\n%s", err, out)
	}
	out, err = s.run("--kubeconfig", nodeKubeconfig, "label", "node", "sandbox-node", "node-role.kubernetes.io/control-plane=")
	if err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("NodeRestriction let the node set a node-role label (err %v):\n%s", err, out)
	}
}

// logLines reads key=value lines from a container's log (`kubectl logs`,
// through the API server and the agent's kubelet port).
func (s sandbox) logLines(t *testing.T, ns, pod string) map[string]string {
	t.Helper()
	out := s.Kubectl(t, "-n", ns, "logs", pod)
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func (s sandbox) podEnvAndVolumes(t *testing.T) {
	hostDir := filepath.Join(filepath.Dir(s.Dir), "hostdir")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "marker"), []byte("on-the-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s.apply(t, "env", strings.Replace(envPod, "HOSTDIR", hostDir, 1))
	s.waitJSONPath(t, "nt", "pod/env", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	t.Logf("pod env Ready %s after apply", time.Since(began).Round(time.Millisecond))
	kubetest.Eventually(t, 30*time.Second, "the pod's report is complete", func() (bool, string) {
		out, err := s.run("-n", "nt", "logs", "env")
		return err == nil && strings.HasSuffix(out, "\ndone"), out
	})
	kv := s.logLines(t, "nt", "env")
	podIP := s.Kubectl(t, "-n", "nt", "get", "pod", "env", "-o", "jsonpath={.status.podIP}")
	hostIP := s.Kubectl(t, "-n", "nt", "get", "pod", "env", "-o", "jsonpath={.status.hostIP}")
	nodeIP := s.Kubectl(t, "get", "node", "sandbox-node", "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	cidr := s.Kubectl(t, "get", "node", "sandbox-node", "-o", "jsonpath={.spec.podCIDR}")
	if podIP == "" || !strings.HasPrefix(podIP, strings.TrimSuffix(cidr, "0/24")) || podIP == nodeIP {
		t.Errorf("podIP %q not a pod address of %s (node %s)", podIP, cidr, nodeIP)
	}
	if hostIP != nodeIP {
		t.Errorf("hostIP %q, node address %q", hostIP, nodeIP)
	}
	want := map[string]string{
		"name": "env", "ns": "nt", "ip": podIP, "node": "sandbox-node", "hostip": nodeIP,
		"greeting": "hello", "password": "s3cret", "expanded": "hello-arg", "chained": "env-in-nt",
		"fromenv": "hello", "init": "from-init", "host": "on-the-host", "uid": "1000", "gid": "1000", "pwd": mountRoot + "/scratch", "hostname": "env",
		"cm": "hello", "secret": "s3cret", "labels": `app="env"`, "sans": "nt", "ca": "yes",
		"scratch": "written", "search": "search nt.svc.cluster.local svc.cluster.local cluster.local",
		"nameserver": "nameserver 10.96.0.10", "hosts": "yes", "eth0": "up",
		"k8s": "10.96.0.1:443", // service links, as the kubelet sets them
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s: pod saw %q, want %q", k, kv[k], v)
		}
	}
	// The projected token is a real one, bound to this pod's service account.
	server := s.Kubectl(t, "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")
	who := s.Kubectl(t, "--kubeconfig=/dev/null", "--server="+server, "--certificate-authority="+filepath.Join(s.Dir, "pki", "ca.crt"),
		"--token="+kv["token"], "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if who != "system:serviceaccount:nt:default" {
		t.Errorf("the pod's token authenticates as %q", who)
	}
	// The volumes live in the pod's mount namespace only.
	if _, err := os.Stat(mountRoot + "/cfg/greeting"); err == nil {
		t.Errorf("the pod's configMap volume is visible on the host")
	}
	for _, cond := range []string{"PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"} {
		s.waitJSONPath(t, "nt", "pod/env", `{.status.conditions[?(@.type=="`+cond+`")].status}`, "True", 5*time.Second)
	}
	s.waitJSONPath(t, "nt", "pod/env", "{.status.containerStatuses[0].ready}/{.status.containerStatuses[0].started}/{.status.containerStatuses[0].restartCount}", "true/true/0", 5*time.Second)
	// Graceful deletion: the agent stops the container and removes the object.
	began = time.Now()
	s.Kubectl(t, "-n", "nt", "delete", "pod", "env", "--wait=true", "--timeout=60s")
	t.Logf("pod env deleted in %s", time.Since(began).Round(time.Millisecond))
}

func (s sandbox) podToPod(t *testing.T) {
	s.apply(t, "server", pingPods)
	s.waitJSONPath(t, "nt", "pod/server", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	ip := s.Kubectl(t, "-n", "nt", "get", "pod", "server", "-o", "jsonpath={.status.podIP}")
	s.apply(t, "client", strings.Replace(clientPod, `"SERVER"`, `"`+ip+`"`, 1))
	s.waitJSONPath(t, "nt", "pod/client", "{.status.phase}", "Succeeded", time.Minute)
	if out := s.Kubectl(t, "-n", "nt", "logs", "client"); out != "pong from server" {
		t.Errorf("client got %q from %s", out, ip)
	}
	s.waitJSONPath(t, "nt", "pod/client", "{.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}", "Completed/0", 5*time.Second)
}

func (s sandbox) statefulSetClaim(t *testing.T) {
	s.apply(t, "db", statefulSet)
	s.waitJSONPath(t, "nt", "pod/db-0", `{.status.conditions[?(@.type=="Ready")].status}`, "True", 2*time.Minute)
	uid1 := s.Kubectl(t, "-n", "nt", "get", "pod", "db-0", "-o", "jsonpath={.metadata.uid}")
	first := s.logLines(t, "nt", "db-0")
	if first["stamp"] == "" || first["mode"] != "stateful" {
		t.Fatalf("db-0 wrote %v", first)
	}
	pv := s.Kubectl(t, "-n", "nt", "get", "pvc", "data-db-0", "-o", "jsonpath={.spec.volumeName}")
	path := s.Kubectl(t, "get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
	sc := s.Kubectl(t, "-n", "nt", "get", "pvc", "data-db-0", "-o", "jsonpath={.spec.storageClassName}")
	if sc != "standard" {
		t.Errorf("claim got storage class %q, want the default", sc)
	}
	onHost, err := os.ReadFile(filepath.Join(path, "stamp"))
	if err != nil || strings.TrimSpace(string(onHost)) != first["stamp"] {
		t.Errorf("provisioned volume %s holds %q (%v), pod wrote %q", path, onHost, err, first["stamp"])
	}
	s.Kubectl(t, "-n", "nt", "delete", "pod", "db-0")
	kubetest.Eventually(t, 2*time.Minute, "db-0 re-created and Ready", func() (bool, string) {
		out, err := s.jsonpath("nt", "pod/db-0", `{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && !strings.HasPrefix(out, uid1) && strings.HasSuffix(out, " True"), out
	})
	second := s.logLines(t, "nt", "db-0")
	if second["stamp"] != first["stamp"] {
		t.Errorf("the claim's data did not survive: first pod wrote %q, second read %q", first["stamp"], second["stamp"])
	}
	// The headless Service gives the new pod its stable DNS name, once the EndpointSlice
	// controller has listed it: looked up before that, the name is NXDOMAIN, which
	// CoreDNS then caches (kubeadm's `cache 30`), so the lookup waits for the listing.
	ip := s.Kubectl(t, "-n", "nt", "get", "pod", "db-0", "-o", "jsonpath={.status.podIP}")
	kubetest.Eventually(t, 2*time.Minute, "db-0's new address ready in the Service's EndpointSlice", func() (bool, string) {
		out, err := s.run("-n", "nt", "get", "endpointslices", "-l", "kubernetes.io/service-name=db", "-o",
			`jsonpath={range .items[*].endpoints[*]}{.hostname}={.addresses[0]}/{.conditions.ready}{" "}{end}`)
		return err == nil && slices.Contains(strings.Fields(out), "db-0="+ip+"/true"), out
	})
	s.apply(t, "resolver", strings.Replace(resolverPod, `"WANT"`, `"`+ip+`"`, 1))
	kubetest.Eventually(t, 2*time.Minute, "pod/resolver Succeeded", func() (bool, string) {
		out, err := s.jsonpath("nt", "pod/resolver", "{.status.phase}")
		if err == nil && out == "Failed" {
			logs, _ := s.run("-n", "nt", "logs", "resolver")
			t.Fatalf("db-0.db.nt.svc.cluster.local did not resolve to %s; the last answer: %q", ip, logs)
		}
		return err == nil && out == "Succeeded", out
	})
	if out := s.Kubectl(t, "-n", "nt", "logs", "resolver"); !strings.HasPrefix(out, ip+" ") {
		t.Errorf("db-0.db.nt.svc.cluster.local resolves to %q, db-0 is %s", out, ip)
	}
}

func (s sandbox) liveness(t *testing.T) {
	s.apply(t, "live", livenessPod)
	kubetest.Eventually(t, time.Minute, "live restarted", func() (bool, string) {
		out, err := s.jsonpath("nt", "pod/live", "{.status.containerStatuses[0].restartCount}")
		return err == nil && out != "" && out != "0", out
	})
	s.waitJSONPath(t, "nt", "pod/live", "{.status.containerStatuses[0].lastState.terminated.exitCode}", "143", 5*time.Second)
	kubetest.Eventually(t, 30*time.Second, "Killing event", func() (bool, string) {
		out, err := s.run("-n", "nt", "get", "events", "--field-selector", "involvedObject.name=live,reason=Killing", "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, "failed liveness probe"), out
	})
	out := s.Kubectl(t, "-n", "nt", "get", "events", "--field-selector", "involvedObject.name=live,reason=Unhealthy", "-o", "jsonpath={.items[0].message}")
	if !strings.Contains(out, "Liveness probe failed") || !strings.Contains(out, "exited with 3") {
		t.Errorf("Unhealthy event: %q", out)
	}
}

func (s sandbox) unknownImage(t *testing.T) {
	s.apply(t, "ghost", ghostPod)
	kubetest.Eventually(t, time.Minute, "ghost waiting on its image", func() (bool, string) {
		out, err := s.jsonpath("nt", "pod/ghost", "{.status.phase}/{.status.containerStatuses[0].state.waiting.reason}")
		return err == nil && (out == "Pending/ErrImagePull" || out == "Pending/ImagePullBackOff"), out
	})
	kubetest.Eventually(t, 30*time.Second, "Failed event naming the image table", func() (bool, string) {
		out, err := s.run("-n", "nt", "get", "events", "--field-selector", "involvedObject.name=ghost,reason=Failed", "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, `registry.invalid/ghost:1.0`) && strings.Contains(out, "image table"), out
	})
}

// gracePeriod: a container that ignores SIGTERM is killed once the pod's
// terminationGracePeriodSeconds (3) is over, not before and not much later.
func (s sandbox) gracePeriod(t *testing.T) {
	s.apply(t, "stubborn", stubbornPod)
	s.waitJSONPath(t, "nt", "pod/stubborn", "{.status.phase}", "Running", time.Minute)
	began := time.Now()
	s.Kubectl(t, "-n", "nt", "delete", "pod", "stubborn", "--wait=true", "--timeout=60s")
	took := time.Since(began)
	t.Logf("deleting a pod that ignores SIGTERM took %s", took.Round(time.Millisecond))
	if took < 3*time.Second || took > 10*time.Second {
		t.Errorf("deletion took %s; the grace period is 3s", took)
	}
}

// startupProbe: until the startup probe passes the container is not
// started and not ready; then both (no readiness probe).
func (s sandbox) startupProbe(t *testing.T) {
	s.apply(t, "slow", slowStartPod)
	s.waitJSONPath(t, "nt", "pod/slow", "{.status.phase}/{.status.containerStatuses[0].started}/{.status.containerStatuses[0].ready}", "Running/false/false", 30*time.Second)
	s.waitJSONPath(t, "nt", "pod/slow", "{.status.containerStatuses[0].started}/{.status.containerStatuses[0].ready}", "true/true", 30*time.Second)
	s.waitJSONPath(t, "nt", "pod/slow", `{.status.conditions[?(@.type=="Ready")].status}`, "True", 5*time.Second)
}

// services: kube-proxy (nftables mode) routes a ClusterIP to the server pod
// and the ` + "`kubernetes`" + ` Service to the API server, which authenticates
// the pod's token and applies RBAC (the default service account may not
// list secrets).
func (s sandbox) services(t *testing.T) {
	s.apply(t, "server-svc", serverService)
	kubetest.Eventually(t, time.Minute, "EndpointSlice of server", func() (bool, string) {
		out, err := s.run("-n", "nt", "get", "endpointslices", "-l", "kubernetes.io/service-name=server", "-o", "jsonpath={.items[*].endpoints[*].addresses[*]}")
		return err == nil && out != "", out
	})
	// kube-proxy programs a Service a moment after its endpoints appear;
	// until then a connection is rejected, so wait for its DNAT rule.
	clusterIP := s.Kubectl(t, "-n", "nt", "get", "service", "server", "-o", "jsonpath={.spec.clusterIP}")
	podIP := s.Kubectl(t, "-n", "nt", "get", "pod", "server", "-o", "jsonpath={.status.podIP}")
	kubetest.Eventually(t, 30*time.Second, "kube-proxy's rules for "+clusterIP, func() (bool, string) {
		out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").CombinedOutput()
		return err == nil && strings.Contains(string(out), clusterIP+" . tcp . 80 : goto service-") &&
			strings.Contains(string(out), "dnat to "+podIP+":8080"), "not yet"
	})
	s.apply(t, "svc-client", svcClient)
	s.waitJSONPath(t, "nt", "pod/svc-client", "{.status.phase}", "Succeeded", time.Minute)
	kv := s.logLines(t, "nt", "svc-client")
	if kv["svc"] != "pong from server" {
		t.Errorf("through the Service: %q; log:\n%s", kv["svc"], s.Kubectl(t, "-n", "nt", "logs", "svc-client"))
	}
	// CoreDNS (a pod behind the kube-dns Service) answers for Services.
	if !strings.HasPrefix(kv["dns"], clusterIP+" ") || kv["byname"] != "pong from server" {
		t.Errorf("by name: getent %q, curl %q", kv["dns"], kv["byname"])
	}
	if !strings.Contains(kv["api"], `User \"system:serviceaccount:nt:default\" cannot list resource \"secrets\"`) {
		t.Errorf("API server through the kubernetes Service: %q", kv["api"])
	}
}

// secretRenewal: a Secret updated while its pod runs reaches the pod's
// volume (within the agent's refresh period, 5 s in the sandbox) in the
// atomic writer's layout, a dropped key disappears, a subPath mount keeps
// its first content, and a deleted Secret leaves the files as they were
// (with a FailedMount warning), as on a kubelet.
func (s sandbox) secretRenewal(t *testing.T) {
	s.apply(t, "renew", renewPod)
	s.waitJSONPath(t, "nt", "pod/renew", `{.status.conditions[?(@.type=="Ready")].status}`, "True", time.Minute)
	lastSeen := func() (string, int) {
		out, err := s.run("-n", "nt", "logs", "renew")
		if err != nil {
			return "logs: " + err.Error(), 0
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1], len(lines)
	}
	waitSeen := func(want string, within time.Duration) time.Duration {
		t.Helper()
		return kubetest.Eventually(t, within, "the pod sees "+want, func() (bool, string) {
			last, _ := lastSeen()
			return last == want, last
		})
	}
	waitSeen("seen=crt-1/extra-1/crt-1", 30*time.Second)
	if kv := s.logLines(t, "nt", "renew"); kv["layout"] != "1" {
		t.Errorf("the volume has no ..data link (layout=%q)", kv["layout"])
	}
	crt2 := base64.StdEncoding.EncodeToString([]byte("crt-2"))
	s.Kubectl(t, "-n", "nt", "patch", "secret", "renew", "--type=json",
		"-p", `[{"op":"replace","path":"/data/tls.crt","value":"`+crt2+`"},{"op":"remove","path":"/data/extra.pem"}]`)
	took := waitSeen("seen=crt-2/none/crt-1", 30*time.Second)
	t.Logf("the renewed Secret reached the pod within %s", took.Round(100*time.Millisecond))

	s.Kubectl(t, "-n", "nt", "delete", "secret", "renew")
	kubetest.Eventually(t, 30*time.Second, "FailedMount event for the deleted Secret", func() (bool, string) {
		out, err := s.run("-n", "nt", "get", "events", "--field-selector", "involvedObject.name=renew,reason=FailedMount", "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, `secrets "renew" not found`), out
	})
	// A line printed after that refresh still shows the last content.
	_, printed := lastSeen()
	kubetest.Eventually(t, 10*time.Second, "a line printed after the failed refresh", func() (bool, string) {
		last, n := lastSeen()
		return n > printed, last
	})
	if last, _ := lastSeen(); last != "seen=crt-2/none/crt-1" {
		t.Errorf("after the Secret's deletion the pod sees %q, want the last content", last)
	}
	s.Kubectl(t, "-n", "nt", "delete", "pod", "renew", "--wait=true", "--timeout=60s")
}
