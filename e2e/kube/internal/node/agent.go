package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Agent is the node: it registers the Node, keeps its Lease, and runs a
// worker for every pod bound to it.
type Agent struct {
	cfg       Config
	cs        kubernetes.Interface
	names     Names
	ipam      *IPAM
	hostIP    string
	hostPaths HostPaths

	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	finished map[types.UID]bool
	wg       sync.WaitGroup
	ctx      context.Context
}

func (a *Agent) logf(format string, args ...any) { log.Printf(format, args...) }

// Run serves until ctx ends, then stops every pod and removes the network
// and the mount points it made.
func Run(ctx context.Context, cfg Config) (err error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return err
	}
	rc.UserAgent = "strom-node-agent/" + cfg.NodeName
	// The kubelet's defaults (kubeAPIQPS 50, kubeAPIBurst 100); client-go's
	// own 5/10 throttles a node that starts a few pods at once.
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	a := &Agent{
		cfg: cfg, cs: cs, names: NamesFor(cfg.Dir), ipam: NewIPAM(cfg.PodCIDR),
		hostIP: Gateway(cfg.PodCIDR).String(), workers: map[types.UID]*podWorker{}, finished: map[types.UID]bool{}, ctx: ctx,
	}
	a.hostPaths.Record = MountPointRecord(cfg.Dir)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	// Mount points a killed predecessor left.
	if err := RemoveRecordedMountPoints(cfg.Dir); err != nil {
		return err
	}
	_ = os.Remove(a.hostPaths.Record)
	// Its podman containers first: they keep their pods' namespaces alive.
	if err := CleanupContainers(cfg.Dir); err != nil {
		return fmt.Errorf("podman containers of an earlier agent: %w", err)
	}
	if err := CleanupPods(a.names); err != nil {
		return fmt.Errorf("leftovers of an earlier agent: %w", err)
	}
	if err := EnsureBridge(a.names, cfg.PodCIDR); err != nil {
		return err
	}
	// The bridge stays: the API server listens on its address. `sandbox
	// down` (or `node-agent cleanup`) removes it.
	defer func() {
		a.wg.Wait()
		err = errors.Join(err, CleanupContainers(cfg.Dir), CleanupPods(a.names), a.hostPaths.RemoveAll())
		a.logf("stopped; pod networks and mount points removed")
	}()
	since := metav1.Now()
	if err := Register(ctx, cs, cfg.NodeName, cfg, since); err != nil {
		return err
	}
	a.logf("registered node %s, pod CIDR %s on bridge %s", cfg.NodeName, cfg.PodCIDR, a.names.Bridge)
	go Heartbeat(ctx, cs, cfg.NodeName, cfg, since, a.logf)
	if cfg.KubeletPort > 0 {
		srv, err := a.serveKubeletAPI()
		if err != nil {
			return err
		}
		defer srv.Close()
	}

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + cfg.NodeName
		}))
	pods := factory.Core().V1().Pods().Informer()
	_, err = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.dispatch(obj.(*v1.Pod)) },
		UpdateFunc: func(_, obj any) { a.dispatch(obj.(*v1.Pod)) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				a.gone(p.UID)
			}
		},
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// dispatch gives a pod update to its worker, starting one for a new pod.
func (a *Agent) dispatch(pod *v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil || a.finished[pod.UID] {
		return
	}
	if w, ok := a.workers[pod.UID]; ok {
		w.offer(pod)
		return
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		if pod.DeletionTimestamp == nil {
			return // finished before this agent started: nothing to run
		}
	}
	w := newPodWorker(a, pod)
	a.workers[pod.UID] = w
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		began := time.Now()
		w.run(a.ctx)
		a.mu.Lock()
		delete(a.workers, pod.UID)
		a.finished[pod.UID] = true
		a.mu.Unlock()
		a.logf("pod %s/%s: worker done after %s", pod.Namespace, pod.Name, time.Since(began).Round(time.Millisecond))
	}()
}

func (a *Agent) gone(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.workers[uid]; ok {
		w.offer(nil)
	}
}

// event records a pod event from "kubelet" on this node, as the kubelet's
// recorder does (without its aggregation).
func (a *Agent) event(pod *v1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	ev := &v1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: v1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         v1.EventSource{Component: "kubelet", Host: a.cfg.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "kubelet", ReportingInstance: a.cfg.NodeName,
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.cs.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			a.logf("event %s on %s/%s: %v", reason, pod.Namespace, pod.Name, err)
		}
	}()
}
