package sandbox

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Cluster is everything that fixes one sandbox's command lines and files.
type Cluster struct {
	Layout      Layout
	BinDir      string
	Ports       Ports
	ServiceCIDR netip.Prefix
}

// DefaultServiceCIDR is kind's and kubeadm's default. Service addresses are
// only allocated from it; nothing in this stage routes traffic to them.
const DefaultServiceCIDR = "10.96.0.0/16"

// ServiceAccountIssuer is the issuer a kubeadm cluster uses, so tokens look
// like a real cluster's to the operator.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// APIServerURL is where every client (components, kubectl, helm) connects:
// the node's address on the pod bridge, which the host and every pod reach
// (pods through the `kubernetes` Service, by kube-proxy).
func (c Cluster) APIServerURL() string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(c.NodeIP().String(), strconv.Itoa(c.Ports.APIServer)))
}

// FirstServiceIP is the ClusterIP the API server gives the `kubernetes`
// Service, so its serving certificate must name it.
func FirstServiceIP(cidr netip.Prefix) netip.Addr {
	return cidr.Masked().Addr().Next()
}

// Identity is one client certificate (and its kubeconfig) the sandbox issues.
// The API server maps CN to the user name and O to groups, and RBAC's
// bootstrap policy grants the system:kube-* users their component roles.
type Identity struct {
	Name   string // file name of the cert and the kubeconfig
	User   string
	Groups []string
}

// Admin is the user of the printed kubeconfig (kubeadm's cluster admin).
var Admin = Identity{Name: "admin", User: "kubernetes-admin", Groups: []string{"system:masters"}}

// ControllerManager and Scheduler are the component identities the default
// RBAC policy knows (system:kube-controller-manager, system:kube-scheduler).
var (
	ControllerManager = Identity{Name: "controller-manager", User: "system:kube-controller-manager"}
	Scheduler         = Identity{Name: "scheduler", User: "system:kube-scheduler"}
)

// Identities are issued at `up`; a node agent adds its own later.
var Identities = []Identity{Admin, ControllerManager, Scheduler, Node, KubeletClient, KubeProxy}
