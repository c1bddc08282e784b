package node

import (
	"net/netip"
	"path/filepath"
	"time"
)

// Config is one agent's setup (flags of `node-agent run`).
type Config struct {
	NodeName    string
	Kubeconfig  string       // the node's own credentials (system:node:NAME)
	Dir         string       // state: pods' volumes, logs, process specs
	PodCIDR     netip.Prefix // this node's pod addresses
	ClusterDNS  string       // nameserver in pods' resolv.conf
	KubeletPort int          // serves /containerLogs for `kubectl logs` (0: off)
	ServingCert string       // the kubelet port's certificate
	ServingKey  string
	ClientCA    string // CA of the API server's kubelet client certificate
	Images      *Images
	Self        string // this executable, re-run as `node-agent init`
	// VolumeRefresh: how often the configMap, secret, downwardAPI and
	// projected volumes of running pods are read again (0: the default).
	VolumeRefresh time.Duration
}

// DefaultVolumeRefresh is the kubelet's sync period (syncFrequency), after
// which it remounts a running pod's volumes; the sandbox asks for less.
const DefaultVolumeRefresh = time.Minute

// VolumeRefreshPeriod is VolumeRefresh or its default.
func (c Config) VolumeRefreshPeriod() time.Duration {
	if c.VolumeRefresh <= 0 {
		return DefaultVolumeRefresh
	}
	return c.VolumeRefresh
}

// PodDir holds one pod's volumes, generated files and logs.
func (c Config) PodDir(uid string) string { return filepath.Join(c.Dir, "pods", uid) }

// LogDir holds the logs of one pod, as /var/log/pods does on a kubelet node:
// <namespace>_<name>_<uid>/<container>/<restart>.log.
func (c Config) LogDir(ns, name, uid string) string {
	return filepath.Join(c.Dir, "logs", ns+"_"+name+"_"+uid)
}
