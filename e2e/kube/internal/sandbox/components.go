package sandbox

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// Component is one process of the sandbox: how to start it and how to tell
// that it is serving.
type Component struct {
	Name   string
	Binary string   // path of the executable
	Args   []string // flags, as on a kubeadm control-plane node
	Health string   // URL that answers 200 once the component serves
}

// Components lists the control plane in start order (stop in reverse). Each
// waits for the one before: the API server needs etcd, the controllers need
// the API server. A node agent will be appended here as the last component.
func (c Cluster) Components() []Component {
	return []Component{c.etcd(), c.apiServer(), c.controllerManager(), c.scheduler(), c.nodeAgent(), c.kubeProxy()}
}

func (c Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c Cluster) etcd() Component {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.Ports.EtcdClient)
	return Component{
		Name:   "etcd",
		Binary: c.bin("etcd"),
		Args: []string{
			"--data-dir=" + c.Layout.EtcdData(),
			"--listen-client-url=" + client,
			fmt.Sprintf("--listen-peer-url=http://127.0.0.1:%d", c.Ports.EtcdPeer),
		},
		Health: client + "/health",
	}
}

func (c Cluster) apiServer() Component {
	l := c.Layout
	return Component{
		Name:   "kube-apiserver",
		Binary: c.bin("kube-apiserver"),
		Args: []string{
			fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.Ports.EtcdClient),
			// The pod bridge's host address (made before the API server
			// starts): reachable from the host and from pods, and what the
			// `kubernetes` Service's endpoints name.
			"--bind-address=" + c.NodeIP().String(),
			"--advertise-address=" + c.NodeIP().String(),
			"--secure-port=" + strconv.Itoa(c.Ports.APIServer),
			"--tls-cert-file=" + l.Cert("apiserver"),
			"--tls-private-key-file=" + l.Key("apiserver"),
			"--client-ca-file=" + l.Cert("ca"),
			"--authorization-mode=Node,RBAC",
			// Added to the default plugin set, as kubeadm does.
			"--enable-admission-plugins=NodeRestriction",
			"--allow-privileged=true",
			"--service-cluster-ip-range=" + c.ServiceCIDR.String(),
			"--service-account-issuer=" + ServiceAccountIssuer,
			"--service-account-key-file=" + l.ServiceAccountPub(),
			"--service-account-signing-key-file=" + l.ServiceAccountKey(),
			"--requestheader-client-ca-file=" + l.Cert("front-proxy-ca"),
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + l.Cert("front-proxy-client"),
			"--proxy-client-key-file=" + l.Key("front-proxy-client"),
			// How it reaches the node agent (`kubectl logs`).
			"--kubelet-client-certificate=" + l.Cert(KubeletClient.Name),
			"--kubelet-client-key=" + l.Key(KubeletClient.Name),
			"--kubelet-preferred-address-types=InternalIP",
			"--profiling=false",
		},
		Health: c.APIServerURL() + "/readyz",
	}
}

func (c Cluster) controllerManager() Component {
	l := c.Layout
	kubeconfig := l.Kubeconfig(ControllerManager.Name)
	return Component{
		Name:   "kube-controller-manager",
		Binary: c.bin("kube-controller-manager"),
		Args: []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(c.Ports.ControllerManager),
			"--tls-cert-file=" + l.Cert("controller-manager-serving"),
			"--tls-private-key-file=" + l.Key("controller-manager-serving"),
			// Every controller that is on by default in a real cluster; this
			// includes statefulset, garbage-collector, endpoints, endpointslice,
			// disruption, namespace, serviceaccount(-token), root-CA publisher
			// and the persistent-volume binder.
			"--controllers=*",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + l.ServiceAccountKey(),
			"--root-ca-file=" + l.Cert("ca"),
			"--cluster-signing-cert-file=" + l.Cert("ca"),
			"--cluster-signing-key-file=" + l.Key("ca"),
			"--service-cluster-ip-range=" + c.ServiceCIDR.String(),
			// Dynamic provisioning for the default StorageClass (node.go).
			"--enable-hostpath-provisioner=true",
			"--profiling=false",
		},
		Health: fmt.Sprintf("https://127.0.0.1:%d/healthz", c.Ports.ControllerManager),
	}
}

func (c Cluster) scheduler() Component {
	l := c.Layout
	kubeconfig := l.Kubeconfig(Scheduler.Name)
	return Component{
		Name:   "kube-scheduler",
		Binary: c.bin("kube-scheduler"),
		Args: []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(c.Ports.Scheduler),
			"--tls-cert-file=" + l.Cert("scheduler-serving"),
			"--tls-private-key-file=" + l.Key("scheduler-serving"),
			"--profiling=false",
		},
		Health: fmt.Sprintf("https://127.0.0.1:%d/readyz", c.Ports.Scheduler),
	}
}
