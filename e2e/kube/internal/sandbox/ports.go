package sandbox

import (
	"fmt"
	"net"
)

// Ports are the loopback ports of one sandbox; each is picked free at `up`
// so several sandboxes (and other agents' servers) can share the machine.
type Ports struct {
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
	Kubelet           int `json:"kubelet"`
	KubeProxyHealth   int `json:"kubeProxyHealth"`
	KubeProxyMetrics  int `json:"kubeProxyMetrics"`
}

// FreePorts asks the kernel for distinct free loopback ports. All listeners
// stay open until every port is known so the kernel cannot hand one out twice.
// A port can still be taken between this call and the component's bind; the
// component then fails to start and `up` reports it and cleans up.
func FreePorts() (Ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 8)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Ports{}, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return Ports{
		EtcdClient:        ports[0],
		EtcdPeer:          ports[1],
		APIServer:         ports[2],
		ControllerManager: ports[3],
		Scheduler:         ports[4],
		Kubelet:           ports[5],
		KubeProxyHealth:   ports[6],
		KubeProxyMetrics:  ports[7],
	}, nil
}
