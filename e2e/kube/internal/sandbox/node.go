package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"strom/e2e/kube/internal/node"
)

// The node: one node agent (cmd/node-agent, internal/node), the sandbox's
// stand-in for the kubelet and a container runtime.

// NodeName is the one Node the sandbox registers.
const NodeName = "sandbox-node"

// VolumeRefresh is how often the node agent updates running pods'
// configMap, secret, downwardAPI and projected volumes.
const VolumeRefresh = 5 * time.Second

var (
	// Node is the agent's identity: the Node authorizer and the
	// NodeRestriction admission plugin recognise system:node:NAME in
	// system:nodes and limit it to its own Node, Lease and pods.
	Node = Identity{Name: "node", User: "system:node:" + NodeName, Groups: []string{"system:nodes"}}
	// KubeletClient is how the API server calls the node (`kubectl logs`),
	// kubeadm's apiserver-kubelet-client.
	KubeletClient = Identity{Name: "apiserver-kubelet-client", User: "kube-apiserver-kubelet-client", Groups: []string{"system:masters"}}
)

// NodeDir is the agent's state: pods' volumes, logs and process specs.
func (l Layout) NodeDir() string { return filepath.Join(l.Dir, "node") }

// PodCIDR is the node's pod network, a /24 picked by the state directory so
// two sandboxes on one machine use different subnets.
func (c Cluster) PodCIDR() netip.Prefix { return node.DefaultPodCIDR(c.Layout.NodeDir()) }

// NodeIP is the node's address: the pod bridge's, reachable from the host
// and from every pod.
func (c Cluster) NodeIP() netip.Addr { return node.Gateway(c.PodCIDR()) }

// DefaultStorageClass provisions claims with the controller-manager's
// hostPath provisioner (--enable-hostpath-provisioner): a directory per
// volume under /tmp/hostpath_pv on this machine, which is the node.
const DefaultStorageClass = "standard"

// ClusterDNS is the cluster DNS Service address (kubeadm's: the tenth of
// the service range) written into pods' resolv.conf.
func (c Cluster) ClusterDNS() netip.Addr {
	a := c.ServiceCIDR.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

func (c Cluster) nodeAgent() Component {
	l := c.Layout
	target := filepath.Dir(filepath.Dir(c.BinDir)) // <target>/kube/bin
	repo := repoRoot(target)
	return Component{
		Name:   "node-agent",
		Binary: c.bin("node-agent"),
		Args: []string{
			"run",
			"--kubeconfig=" + l.Kubeconfig(Node.Name),
			"--name=" + NodeName,
			"--dir=" + l.NodeDir(),
			"--pod-cidr=" + c.PodCIDR().String(),
			"--cluster-dns=" + c.ClusterDNS().String(),
			"--images=" + filepath.Join(repo, "e2e", "kube", "images.json"),
			"--repo=" + repo,
			"--target=" + target,
			"--kubelet-port=" + strconv.Itoa(c.Ports.Kubelet),
			"--tls-cert=" + l.Cert("node-serving"),
			"--tls-key=" + l.Key("node-serving"),
			"--client-ca=" + l.Cert("ca"),
			// A renewed Secret reaches running pods within seconds (the
			// kubelet's minute and cache TTL would slow every test down).
			"--volume-refresh=" + VolumeRefresh.String(),
		},
		// Served once the Node is registered and reported Ready.
		Health: fmt.Sprintf("https://%s/healthz", net.JoinHostPort(c.NodeIP().String(), strconv.Itoa(c.Ports.Kubelet))),
	}
}

// repoRoot finds the repository (for the image table): above the target
// directory, else above the working directory.
func repoRoot(target string) string {
	wd, _ := os.Getwd()
	for _, start := range []string{target, wd} {
		for d := start; d != "/" && d != "."; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "e2e", "kube", "images.json")); err == nil {
				return d
			}
		}
	}
	return wd
}

// nodeServing is the kubelet port's certificate (the node's address).
func (c Cluster) nodeServing() CertSpec {
	return CertSpec{CommonName: "system:node:" + NodeName, DNSNames: []string{NodeName, "localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IP(c.NodeIP().AsSlice())}, Server: true}
}

// EnsureDefaultStorageClass makes the hostPath StorageClass the default, so
// a claim without a class (the operator's, a chart's) is provisioned.
func EnsureDefaultStorageClass(ctx context.Context, kubeconfig string) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        DefaultStorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner: "kubernetes.io/host-path",
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("default StorageClass: %w", err)
	}
	return nil
}

// CleanupNode removes the podman containers a killed agent left, the node's
// network (the bridge, the pod namespaces and veths a killed agent left, the
// agent's nftables table), the mount points it made, and the provisioned
// volumes it used (recorded in its state), which outlive the agent on purpose
// but not the sandbox.
// kube-proxy's tables only go when this sandbox ran kube-proxy: they may be
// another sandbox's (the reason a second `up` fails and cleans up).
func CleanupNode(l Layout, st State) error {
	// Podman containers first: each keeps its pod's network namespace alive.
	errs := []error{node.CleanupContainers(l.NodeDir())}
	errs = append(errs, node.CleanupNetwork(node.NamesFor(l.NodeDir())), node.RemoveRecordedMountPoints(l.NodeDir()))
	for _, p := range st.Procs {
		if p.Name == "kube-proxy" {
			errs = append(errs, cleanupKubeProxy())
		}
	}
	f, err := os.Open(node.ProvisionedRecord(l.NodeDir()))
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p := strings.TrimSpace(sc.Text()); node.IsProvisioned(p) {
				errs = append(errs, os.RemoveAll(p))
			}
		}
		f.Close()
		// The provisioner's base directory, once nothing else is in it.
		_ = os.Remove(filepath.Clean(node.ProvisionedBase))
	}
	return errors.Join(errs...)
}

// KubeProxy is kube-proxy's identity; RBAC's bootstrap policy binds
// system:node-proxier to the user system:kube-proxy.
var KubeProxy = Identity{Name: "kube-proxy", User: "system:kube-proxy"}

// PrepareNodeNetwork makes the pod bridge before the API server starts,
// since the API server listens on its address. The agent adopts it.
// kube-proxy's nftables tables have fixed names and every sandbox uses the
// same service range, so a second sandbox on the machine would rewrite the
// first one's Services: refuse to start next to one.
func PrepareNodeNetwork(c Cluster) error {
	for _, family := range []string{"ip", "ip6"} {
		if exec.Command("nft", "list", "table", family, "kube-proxy").Run() == nil {
			return fmt.Errorf("nftables table %s kube-proxy exists: another sandbox (or kube-proxy) runs on this machine; "+
				"stop it (`sandbox down --dir ...`) or delete the table if it is a leftover", family)
		}
	}
	return node.EnsureBridge(node.NamesFor(c.Layout.NodeDir()), c.PodCIDR())
}

// kubeProxy is the real kube-proxy in nftables mode: ClusterIPs and
// NodePorts (on the node's address only) DNATed to the endpoints.
func (c Cluster) kubeProxy() Component {
	return Component{
		Name:   "kube-proxy",
		Binary: c.bin("kube-proxy"),
		Args: []string{
			"--kubeconfig=" + c.Layout.Kubeconfig(KubeProxy.Name),
			"--proxy-mode=nftables",
			"--hostname-override=" + NodeName,
			"--cluster-cidr=" + c.PodCIDR().String(),
			"--nodeport-addresses=" + c.NodeIP().String() + "/32",
			"--healthz-bind-address=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Ports.KubeProxyHealth)),
			"--metrics-bind-address=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Ports.KubeProxyMetrics)),
			// 0: leave the machine's conntrack settings alone.
			"--conntrack-max-per-core=0",
			"--conntrack-tcp-timeout-established=0",
			"--conntrack-tcp-timeout-close-wait=0",
			"--profiling=false",
		},
		Health: fmt.Sprintf("http://127.0.0.1:%d/healthz", c.Ports.KubeProxyHealth),
	}
}

// cleanupKubeProxy deletes kube-proxy's nftables tables (it leaves them
// when it stops, as on a real node). The names are kube-proxy's own, so
// only one sandbox with services can run on a machine at a time.
func cleanupKubeProxy() error {
	var errs []error
	for _, family := range []string{"ip", "ip6"} {
		if exec.Command("nft", "list", "table", family, "kube-proxy").Run() != nil {
			continue
		}
		if out, err := exec.Command("nft", "delete", "table", family, "kube-proxy").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s kube-proxy: %w: %s", family, err, out))
		}
	}
	return errors.Join(errs...)
}
