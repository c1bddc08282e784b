package node

import (
	"context"
	"encoding/json"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (w *podWorker) view() PodView {
	v := PodView{
		SandboxReady:  w.sandbox,
		InitsDone:     w.initIdx >= len(w.inits),
		RestartPolicy: w.pod.Spec.RestartPolicy,
		PodIP:         w.podIP(),
		HostIP:        w.a.hostIP,
		StartTime:     w.startTime,
		Reason:        "",
		Message:       w.message,
	}
	for _, c := range w.inits {
		v.Inits = append(v.Inits, c.status)
	}
	for _, c := range w.ctrs {
		v.Ctrs = append(v.Ctrs, c.status)
	}
	if v.Inits == nil {
		v.Inits = nil
	}
	return v
}

// report patches the pod's status when it changed; false if that failed.
func (w *podWorker) report(ctx context.Context) bool {
	st := BuildStatus(w.pod.Status, w.view(), metav1.Now())
	if w.lastSent != nil && equality.Semantic.DeepEqual(*w.lastSent, st) {
		return true
	}
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": w.uid}, // precondition: this pod, not a namesake
		"status":   st,
	})
	if err != nil {
		w.logf("status: %v", err)
		return true // cannot get better by retrying
	}
	_, err = w.a.cs.CoreV1().Pods(w.pod.Namespace).Patch(ctx, w.pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return true // gone, or a namesake: the informer tells us next
	}
	if err != nil {
		w.logf("status: %v", err)
		return false
	}
	w.lastSent = &st
	return true
}
