package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// KubeletVersion is what the Node reports: the release the control plane
// is built from, so version-skew checks see a matching kubelet.
const KubeletVersion = "v1.37.2"

// leaseDuration and heartbeat follow the kubelet's defaults: a lease of 40 s
// renewed every 10 s, so the node lifecycle controller sees a live node.
const (
	leaseDuration = 40
	heartbeat     = 10 * time.Second
)

// NodeObject is the Node the agent registers: its pod CIDR, its address
// (the bridge's gateway, where pods and the API server reach it), capacity
// from this machine, and the kubelet endpoint that serves logs.
func NodeObject(name string, cfg Config) *v1.Node {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(memTotal(), resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
				"beta.kubernetes.io/os":  "linux",
			},
		},
		Spec: v1.NodeSpec{PodCIDR: cfg.PodCIDR.String(), PodCIDRs: []string{cfg.PodCIDR.String()}},
		Status: v1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
		},
	}
}

// NodeStatus is the status the agent reports on every heartbeat.
func NodeStatus(name string, cfg Config, now metav1.Time, since metav1.Time) v1.NodeStatus {
	st := NodeObject(name, cfg).Status
	st.Phase = v1.NodeRunning
	st.Addresses = []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: Gateway(cfg.PodCIDR).String()},
		{Type: v1.NodeHostName, Address: name},
	}
	st.DaemonEndpoints = v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(cfg.KubeletPort)}}
	st.NodeInfo = v1.NodeSystemInfo{
		KubeletVersion:          KubeletVersion,
		ContainerRuntimeVersion: "strom-node-agent://" + KubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            runtime.GOARCH,
		KernelVersion:           kernelVersion(),
		OSImage:                 "strom kube sandbox",
	}
	cond := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		return v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: since}
	}
	st.Conditions = []v1.NodeCondition{
		cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "the node agent does not measure memory pressure"),
		cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "the node agent does not measure disk pressure"),
		cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "the node agent does not measure PID pressure"),
		cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "strom node agent is posting ready status"),
	}
	return st
}

// Register creates the Node (or takes over an existing one of that name)
// and reports its status.
func Register(ctx context.Context, cs kubernetes.Interface, name string, cfg Config, since metav1.Time) error {
	_, err := cs.CoreV1().Nodes().Create(ctx, NodeObject(name, cfg), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", name, err)
	}
	return updateNodeStatus(ctx, cs, name, cfg, since)
}

func updateNodeStatus(ctx context.Context, cs kubernetes.Interface, name string, cfg Config, since metav1.Time) error {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	n.Status = NodeStatus(name, cfg, metav1.Now(), since)
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// Heartbeat renews the node's Lease in kube-node-lease and its status until
// ctx ends. Errors are logged and retried on the next beat, as the kubelet does.
func Heartbeat(ctx context.Context, cs kubernetes.Interface, name string, cfg Config, since metav1.Time, logf func(string, ...any)) {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		if err := renewLease(ctx, cs, name); err != nil {
			logf("lease: %v", err)
		}
		if err := updateNodeStatus(ctx, cs, name, cfg, since); err != nil {
			logf("node status: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func renewLease(ctx context.Context, cs kubernetes.Interface, name string) error {
	leases := cs.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, nerr := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if nerr != nil {
			return nerr
		}
		l = &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: v1.NamespaceNodeLease,
				// Owned by the Node, as the kubelet's lease: deleting the
				// Node lets the garbage collector remove it.
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}},
			},
			Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(leaseDuration)), RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	l.Spec.HolderIdentity = ptr.To(name)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration))
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

func memTotal() int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	var kb int64
	if _, err := fmt.Sscanf(string(raw), "MemTotal: %d kB", &kb); err != nil {
		return 1 << 30
	}
	return kb * 1024
}

func kernelVersion() string {
	raw, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return string(trimNL(raw))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
