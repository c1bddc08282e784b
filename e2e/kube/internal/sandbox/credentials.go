package sandbox

import (
	"fmt"
	"net"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WriteCredentials makes the CA, the serving certificates, one client
// certificate and kubeconfig per identity, the front-proxy CA and client
// certificate, and the service-account keys: the set a kubeadm node has.
func WriteCredentials(c Cluster) error {
	l := c.Layout
	if err := os.MkdirAll(l.PKI(), 0o700); err != nil {
		return err
	}
	ca, err := NewCA(l, "ca")
	if err != nil {
		return err
	}
	// The aggregation layer's own CA: the API server proxies to extension
	// API servers with this client certificate, and they (and the
	// controller-manager and scheduler, which read the CA from the
	// extension-apiserver-authentication ConfigMap) trust it.
	frontProxy, err := NewCA(l, "front-proxy-ca")
	if err != nil {
		return err
	}
	if err := frontProxy.Issue(l, "front-proxy-client", CertSpec{CommonName: "front-proxy-client"}); err != nil {
		return err
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	serving := map[string]CertSpec{
		"apiserver": {
			CommonName: "kube-apiserver",
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
				"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs:    append(loopback, net.IP(FirstServiceIP(c.ServiceCIDR).AsSlice()), net.IP(c.NodeIP().AsSlice())),
			Server: true,
		},
		"controller-manager-serving": {CommonName: "kube-controller-manager", DNSNames: []string{"localhost"}, IPs: loopback, Server: true},
		"scheduler-serving":          {CommonName: "kube-scheduler", DNSNames: []string{"localhost"}, IPs: loopback, Server: true},
		"node-serving":               c.nodeServing(),
	}
	for name, spec := range serving {
		if err := ca.Issue(l, name, spec); err != nil {
			return err
		}
	}
	for _, id := range Identities {
		spec := CertSpec{CommonName: id.User, Organization: id.Groups}
		if err := ca.Issue(l, id.Name, spec); err != nil {
			return err
		}
		if err := writeKubeconfig(c, id); err != nil {
			return err
		}
	}
	return WriteServiceAccountKeys(l)
}

// writeKubeconfig embeds the certificates so the file works on its own (for
// kubectl, helm, and later the operator's tests).
func writeKubeconfig(c Cluster, id Identity) error {
	l := c.Layout
	ca, err := os.ReadFile(l.Cert("ca"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(l.Cert(id.Name))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(l.Key(id.Name))
	if err != nil {
		return err
	}
	const name = "strom-sandbox"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.APIServerURL(), CertificateAuthorityData: ca}
	cfg.AuthInfos[id.User] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: id.User}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, l.Kubeconfig(id.Name)); err != nil {
		return fmt.Errorf("kubeconfig for %s: %w", id.User, err)
	}
	return nil
}
