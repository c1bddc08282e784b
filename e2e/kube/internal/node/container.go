package node

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// ctr is one container of a pod as its worker tracks it. Only the worker's
// goroutine touches it; the process and the probers report by events.
type ctr struct {
	spec       v1.Container
	isInit     bool
	status     v1.ContainerStatus
	proc       *Proc
	instance   int // bumped at every start; stale events carry an older one
	stopProbes context.CancelFunc
	probes     map[ProbeKind]*ProbeCounter
	failures   int       // exits in a row, for the back-off
	notBefore  time.Time // no start before this (back-off)
	killing    bool      // stopped by the agent (liveness, startup)
}

func newCtr(spec v1.Container, isInit bool) *ctr {
	return &ctr{
		spec:   spec,
		isInit: isInit,
		status: v1.ContainerStatus{
			Name:    spec.Name,
			Image:   spec.Image,
			State:   v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			Started: ptr.To(false),
		},
	}
}

// backoff is the kubelet's crash-loop delay: 10 s, doubling, at most 5 min.
func backoff(failures int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < failures && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// shouldRestart applies the pod's restartPolicy to an exit.
func shouldRestart(policy v1.RestartPolicy, code int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}

// isReadOnlySource: the kubelet mounts these volume types read-only whatever
// the mount says.
func isReadOnlySource(v v1.Volume) bool {
	vs := v.VolumeSource
	return vs.ConfigMap != nil || vs.Secret != nil || vs.DownwardAPI != nil || vs.Projected != nil
}

// identity is the user and groups a container runs as: its own security
// context over the pod's. nil: as the agent (root).
func identity(pod *v1.Pod, c *v1.Container) (uid, gid *int64, groups []int64, nonRoot bool) {
	if ps := pod.Spec.SecurityContext; ps != nil {
		uid, gid, nonRoot = ps.RunAsUser, ps.RunAsGroup, ptr.Deref(ps.RunAsNonRoot, false)
		groups = append(groups, ps.SupplementalGroups...)
		if ps.FSGroup != nil {
			groups = append(groups, *ps.FSGroup)
		}
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			uid = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			gid = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			nonRoot = *cs.RunAsNonRoot
		}
	}
	return uid, gid, groups, nonRoot
}
