package node

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// stopAll stops every running container with grace and waits.
func (w *podWorker) stopAll(grace time.Duration, announce bool) {
	var wg sync.WaitGroup
	for _, c := range append(append([]*ctr{}, w.inits...), w.ctrs...) {
		if c.proc == nil {
			continue
		}
		if announce {
			w.a.event(w.pod, v1.EventTypeNormal, "Killing", fmt.Sprintf("Stopping container %s", c.spec.Name))
		}
		if c.stopProbes != nil {
			c.stopProbes()
		}
		wg.Add(1)
		go func(p *Proc) {
			defer wg.Done()
			p.Stop(grace)
		}(c.proc)
	}
	wg.Wait()
	// The exit events are queued; apply them so the status says terminated.
	for {
		select {
		case ev := <-w.events:
			if e, ok := ev.(exitEvent); ok && e.instance == e.c.instance {
				e.c.proc = nil
				started := metav1.Now()
				if r := e.c.status.State.Running; r != nil {
					started = r.StartedAt
				}
				e.c.status.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: int32(e.code), Reason: "Error", StartedAt: started, FinishedAt: metav1.NewTime(e.at), ContainerID: e.c.status.ContainerID}}
				if e.code == 0 {
					e.c.status.State.Terminated.Reason = "Completed"
				}
				e.c.status.Ready = false
			}
		default:
			if w.anyRunning() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
	}
}

func (w *podWorker) anyRunning() bool {
	for _, c := range append(append([]*ctr{}, w.inits...), w.ctrs...) {
		if c.proc != nil {
			return true
		}
	}
	return false
}

// cleanup removes the pod's network and files (its emptyDirs with them).
func (w *podWorker) cleanup() {
	uid := string(w.uid)
	if err := TeardownPodNetwork(w.a.names, uid); err != nil {
		w.logf("network teardown: %v", err)
	}
	w.a.ipam.Release(uid)
	if err := os.RemoveAll(w.a.cfg.PodDir(uid)); err != nil {
		w.logf("remove pod dir: %v", err)
	}
}

// terminate is a graceful deletion: stop the containers within the
// deletion's grace period, report, clean up, then remove the object (grace
// 0, for this UID only), which is the kubelet's part of a pod deletion.
func (w *podWorker) terminate(ctx context.Context, gone bool) {
	grace := w.grace(w.pod.DeletionGracePeriodSeconds)
	w.logf("terminating (grace %s)", grace)
	w.stopAll(grace, true)
	if !gone {
		w.report(ctx)
	}
	w.cleanup()
	_ = os.RemoveAll(w.a.cfg.LogDir(w.pod.Namespace, w.pod.Name, string(w.uid)))
	if gone {
		return
	}
	err := w.a.cs.CoreV1().Pods(w.pod.Namespace).Delete(ctx, w.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &w.uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.logf("delete: %v", err)
	}
}

// shutdown is the agent stopping: containers get at most a few seconds, as
// `sandbox down` allows the agent 15 s in all, and the pod objects stay.
func (w *podWorker) shutdown() {
	w.stopAll(min(w.grace(nil), 5*time.Second), false)
	w.cleanup()
}
