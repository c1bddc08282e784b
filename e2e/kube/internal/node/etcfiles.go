package node

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// ClusterDomain is the DNS domain of the sandbox, as on kubeadm and kind.
const ClusterDomain = "cluster.local"

// HostsFile is the pod's /etc/hosts, as the kubelet writes it: loopback,
// the pod's own name (with its subdomain FQDN when it has one), then the
// spec's hostAliases.
func HostsFile(pod *v1.Pod, podIP string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (strom node agent).\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	host := PodHostname(pod)
	if pod.Spec.Subdomain != "" {
		fqdn := fmt.Sprintf("%s.%s.%s.svc.%s", host, pod.Spec.Subdomain, pod.Namespace, ClusterDomain)
		fmt.Fprintf(&b, "%s\t%s\t%s\n", podIP, fqdn, host)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", podIP, host)
	}
	for _, a := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "\n# Entries added by HostAliases.\n%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	return b.String()
}

// PodHostname is spec.hostname, else the pod's name (truncated to 63, a DNS label).
func PodHostname(pod *v1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// ResolvConf is the pod's /etc/resolv.conf for dnsPolicy ClusterFirst: the
// cluster DNS Service and the namespace's search path, ndots:5. dnsPolicy
// Default (and hostNetwork pods) get the host's file instead; dnsConfig
// options are appended.
func ResolvConf(pod *v1.Pod, dnsIP string, hostResolv string) string {
	if pod.Spec.DNSPolicy == v1.DNSDefault || pod.Spec.DNSPolicy == v1.DNSNone && pod.Spec.DNSConfig == nil {
		return hostResolv
	}
	servers := []string{dnsIP}
	search := []string{pod.Namespace + ".svc." + ClusterDomain, "svc." + ClusterDomain, ClusterDomain}
	options := []string{"ndots:5"}
	if pod.Spec.DNSPolicy == v1.DNSNone {
		servers, search, options = nil, nil, nil
	}
	if c := pod.Spec.DNSConfig; c != nil {
		servers = append(servers, c.Nameservers...)
		search = append(search, c.Searches...)
		for _, o := range c.Options {
			if o.Value != nil {
				options = append(options, o.Name+":"+*o.Value)
			} else {
				options = append(options, o.Name)
			}
		}
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}
