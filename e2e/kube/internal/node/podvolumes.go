package node

import (
	"context"
	"maps"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// volumeRefreshTimeout bounds one refresh: the worker does nothing else
// meanwhile (as the kubelet's pod worker remounts within its sync).
const volumeRefreshTimeout = 10 * time.Second

// refreshVolumes brings a live pod's generated volumes up to date when
// that is due (every Config.VolumeRefresh, and at once when its labels or
// annotations changed) and says when it is due next; zero once the pod
// has finished, as the kubelet leaves a finished pod's volumes alone.
func (w *podWorker) refreshVolumes(ctx context.Context) time.Time {
	if p := Phase(w.view()); p == v1.PodSucceeded || p == v1.PodFailed {
		return time.Time{}
	}
	if time.Now().Before(w.refreshAt) {
		return w.refreshAt
	}
	rctx, cancel := context.WithTimeout(ctx, volumeRefreshTimeout)
	defer cancel()
	updated, err := w.vols.Refresh(rctx, w.pod, w.podIP(), w.a.hostIP)
	if len(updated) > 0 {
		w.logf("volumes updated: %s", strings.Join(updated, ", "))
	}
	if err != nil && ctx.Err() == nil {
		// The volume keeps its last content; say so as the kubelet does.
		w.logf("volume refresh: %v", err)
		w.warn("FailedMount", err.Error())
	}
	w.refreshAt = time.Now().Add(w.a.cfg.VolumeRefreshPeriod())
	return w.refreshAt
}

// metadataChanged: labels or annotations, which downwardAPI files show.
func metadataChanged(old, cur *v1.Pod) bool {
	return !maps.Equal(old.Labels, cur.Labels) || !maps.Equal(old.Annotations, cur.Annotations)
}
