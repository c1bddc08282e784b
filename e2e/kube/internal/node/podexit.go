package node

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// handle applies one event from a container process or one of its probers.
func (w *podWorker) handle(ev any) {
	switch e := ev.(type) {
	case exitEvent:
		if e.instance == e.c.instance {
			w.exited(e)
		}
	case probeEvent:
		if e.instance == e.c.instance && e.c.proc != nil {
			w.probed(e)
		}
	}
}

// exited records a container's exit and decides, by the restart policy, whether
// and when it runs again.
func (w *podWorker) exited(e exitEvent) {
	c := e.c
	c.proc = nil
	if c.stopProbes != nil {
		c.stopProbes()
	}
	started := metav1.Now()
	if r := c.status.State.Running; r != nil {
		started = r.StartedAt
	}
	reason := "Completed"
	if e.code != 0 {
		reason = "Error"
	}
	term := &v1.ContainerStateTerminated{ExitCode: int32(e.code), Reason: reason, StartedAt: started, FinishedAt: metav1.NewTime(e.at), ContainerID: c.status.ContainerID}
	c.status.Ready, c.status.Started = false, ptr.To(false)
	w.logf("container %s exited with %d", c.spec.Name, e.code)
	if c.isInit && e.code == 0 {
		c.status.State = v1.ContainerState{Terminated: term}
		return
	}
	if !shouldRestart(w.pod.Spec.RestartPolicy, int32(e.code)) && !(c.isInit && w.pod.Spec.RestartPolicy != v1.RestartPolicyNever) {
		c.status.State = v1.ContainerState{Terminated: term}
		return
	}
	// Restart after the back-off; a run of 10 minutes forgives earlier crashes.
	if e.at.Sub(started.Time) > 10*time.Minute {
		c.failures = 0
	}
	c.failures++
	c.notBefore = e.at.Add(backoff(c.failures))
	c.status.RestartCount++
	c.status.LastTerminationState = v1.ContainerState{Terminated: term}
	c.status.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", backoff(c.failures), c.spec.Name, w.pod.Name),
	}}
	w.a.event(w.pod, v1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.spec.Name, w.pod.Name))
}
