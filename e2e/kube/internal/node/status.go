package node

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodView is what the pod worker knows of a pod, the input of its status.
type PodView struct {
	SandboxReady  bool // network namespace and volumes are in place
	InitsDone     bool
	Inits, Ctrs   []v1.ContainerStatus
	RestartPolicy v1.RestartPolicy
	PodIP, HostIP string
	StartTime     *metav1.Time
	Reason        string // pod-level reason/message, e.g. a volume that cannot be set up
	Message       string
}

func terminated(s v1.ContainerStatus) *v1.ContainerStateTerminated { return s.State.Terminated }

// everRan: the container has run at least once (running now, exited, or
// waiting to restart after an exit).
func everRan(s v1.ContainerStatus) bool {
	return s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil
}

// Phase is the pod phase by the kubelet's rules: Pending until the init
// containers are done and every container has run; Running while one runs
// or will be restarted; Succeeded/Failed once all have stopped for good.
func Phase(v PodView) v1.PodPhase {
	if !v.InitsDone {
		for _, s := range v.Inits {
			if t := terminated(s); t != nil && t.ExitCode != 0 && v.RestartPolicy == v1.RestartPolicyNever {
				return v1.PodFailed
			}
		}
		return v1.PodPending
	}
	running, failed, stopped := 0, 0, 0
	for _, s := range v.Ctrs {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode != 0 {
				failed++
			}
		case !everRan(s):
			return v1.PodPending
		}
	}
	switch {
	case running > 0:
		return v1.PodRunning
	case stopped < len(v.Ctrs):
		return v1.PodRunning // waiting to be restarted
	case v.RestartPolicy == v1.RestartPolicyAlways:
		return v1.PodRunning
	case failed > 0 && v.RestartPolicy == v1.RestartPolicyOnFailure:
		return v1.PodRunning
	case failed > 0:
		return v1.PodFailed
	}
	return v1.PodSucceeded
}

// BuildStatus makes the pod's status from the view, keeping conditions
// other components own (PodScheduled) and the transition times of
// conditions that did not change.
func BuildStatus(old v1.PodStatus, v PodView, now metav1.Time) v1.PodStatus {
	phase := Phase(v)
	allReady := v.InitsDone && len(v.Ctrs) > 0
	for _, s := range v.Ctrs {
		allReady = allReady && s.Ready
	}
	if phase == v1.PodSucceeded || phase == v1.PodFailed {
		allReady = false
	}
	ready := func(b bool) v1.ConditionStatus {
		if b {
			return v1.ConditionTrue
		}
		return v1.ConditionFalse
	}
	ours := []v1.PodCondition{
		{Type: v1.PodReadyToStartContainers, Status: ready(v.SandboxReady)},
		{Type: v1.PodInitialized, Status: ready(v.InitsDone)},
		{Type: v1.ContainersReady, Status: ready(allReady)},
		{Type: v1.PodReady, Status: ready(allReady)},
	}
	if !allReady {
		ours[2].Reason, ours[3].Reason = "ContainersNotReady", "ContainersNotReady"
	}
	if !v.InitsDone {
		ours[1].Reason = "ContainersNotInitialized"
	}
	var conds []v1.PodCondition
	for _, c := range old.Conditions {
		if !isOurs(c.Type) {
			conds = append(conds, c)
		}
	}
	for _, c := range ours {
		c.LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		conds = append(conds, c)
	}
	st := v1.PodStatus{
		Phase:                 phase,
		Conditions:            conds,
		HostIP:                v.HostIP,
		PodIP:                 v.PodIP,
		StartTime:             v.StartTime,
		InitContainerStatuses: v.Inits,
		ContainerStatuses:     v.Ctrs,
		QOSClass:              old.QOSClass,
		Reason:                v.Reason,
		Message:               v.Message,
	}
	if v.HostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: v.HostIP}}
	}
	if v.PodIP != "" {
		st.PodIPs = []v1.PodIP{{IP: v.PodIP}}
	}
	return st
}

func isOurs(t v1.PodConditionType) bool {
	switch t {
	case v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady:
		return true
	}
	return false
}
