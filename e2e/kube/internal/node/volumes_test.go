package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// refreshPod mounts what a broker does: its TLS Secret, an optional
// ConfigMap, its labels and the service-account projection.
func refreshPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "broker-0", Namespace: "kafka", UID: "u-1", Labels: map[string]string{"app": "broker"}},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: "broker"}},
			Volumes: []v1.Volume{
				{Name: "tls", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "tls", DefaultMode: ptr.To(int32(0o440))}}},
				{Name: "opt", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
					LocalObjectReference: v1.LocalObjectReference{Name: "opt"}, Optional: ptr.To(true),
					Items: []v1.KeyToPath{{Key: "a", Path: "dir/a", Mode: ptr.To(int32(0o600))}, {Key: "missing", Path: "m"}},
				}}},
				{Name: "podinfo", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{
					Items: []v1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
				}}},
				{Name: "sa", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
					{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(3607))}},
					{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				}}}},
				{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			},
		},
	}
}

// TestVolumesRefresh: Refresh writes exactly the volumes whose sources
// changed, keeps a deleted Secret's files, empties a gone optional
// ConfigMap and renews the token only when it is due.
func TestVolumesRefresh(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "kafka"}, Data: map[string][]byte{"tls.crt": []byte("crt-1"), "old.pem": []byte("old")}},
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "opt", Namespace: "kafka"}, Data: map[string]string{"a": "1"}},
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "kafka"}, Data: map[string]string{"ca.crt": "ca"}},
	)
	tokens := 0
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tokens++
		return true, &authv1.TokenRequest{Status: authv1.TokenRequestStatus{
			Token: "token-" + string(rune('0'+tokens)), ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour)),
		}}, nil
	})
	pod := refreshPod()
	if os.Geteuid() == 0 {
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To(int64(4242))}
	}
	podDir := t.TempDir()
	vols := NewVolumes(Sources{CS: cs}, pod, podDir)
	paths, err := vols.Prepare(ctx, pod, "10.244.0.5", "10.244.0.1")
	if err != nil {
		t.Fatal(err)
	}
	file := func(vol, rel string) string {
		raw, err := os.ReadFile(filepath.Join(paths[vol], rel))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(raw)
	}
	refresh := func(want ...string) error {
		t.Helper()
		updated, err := vols.Refresh(ctx, pod, "10.244.0.5", "10.244.0.1")
		slices.Sort(updated)
		if !slices.Equal(updated, want) {
			t.Errorf("Refresh updated %v, want %v (err %v)", updated, want, err)
		}
		return err
	}
	if got := file("tls", "tls.crt") + file("opt", "dir/a") + file("podinfo", "labels") + file("sa", "token") + file("sa", "ca.crt"); got != `crt-11app="broker"token-1ca` {
		t.Fatalf("prepared volumes hold %q", got)
	}
	if _, err := os.Lstat(filepath.Join(paths["opt"], "m")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the optional ConfigMap's missing key made a file (%v)", err)
	}
	if st, err := os.Stat(filepath.Join(paths["opt"], "dir/a")); err != nil || st.Mode().Perm()&0o707 != 0o600 {
		t.Errorf("item mode: %v %v", st.Mode(), err)
	}

	// Nothing changed: nothing written, no new token.
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	if tokens != 1 {
		t.Errorf("%d token requests for an unexpired token", tokens)
	}

	// The Secret is renewed (a key replaced, one dropped) and the labels change.
	_, err = cs.CoreV1().Secrets("kafka").Update(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "kafka"}, Data: map[string][]byte{"tls.crt": []byte("crt-2")}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels["renewed"] = "yes"
	if err := refresh("podinfo", "tls"); err != nil {
		t.Fatal(err)
	}
	if got := file("tls", "tls.crt"); got != "crt-2" {
		t.Errorf("tls.crt = %q after the Secret's update", got)
	}
	if _, err := os.Lstat(filepath.Join(paths["tls"], "old.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key dropped from the Secret is still a file (%v)", err)
	}
	if got := file("podinfo", "labels"); got != "app=\"broker\"\nrenewed=\"yes\"" {
		t.Errorf("labels file %q", got)
	}
	st, err := os.Stat(filepath.Join(paths["tls"], "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if fsGroup := pod.Spec.SecurityContext; fsGroup != nil {
		if gid := st.Sys().(*syscall.Stat_t).Gid; gid != 4242 || st.Mode().Perm() != 0o440 {
			t.Errorf("renewed tls.crt: group %d mode %s, want the fsGroup 4242 and 0440", gid, st.Mode())
		}
	} else if st.Mode().Perm() != 0o440 {
		t.Errorf("renewed tls.crt: mode %s, want defaultMode 0440", st.Mode())
	}

	// The API server fails to answer for the optional ConfigMap: that is
	// not its absence, and the volume keeps its files.
	failOnce := true
	cs.PrependReactor("get", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() != "opt" || !failOnce {
			return false, nil, nil
		}
		failOnce = false
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	if err := refresh(); err == nil {
		t.Error("a failed read of the optional ConfigMap was not reported")
	}
	if got := file("opt", "dir/a"); got != "1" {
		t.Errorf("dir/a = %q after a failed read, want the last content", got)
	}

	// The Secret is deleted: its files stay (and the error says why); the
	// optional ConfigMap is deleted: its volume empties.
	if err := cs.CoreV1().Secrets("kafka").Delete(ctx, "tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps("kafka").Delete(ctx, "opt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := refresh("opt"); err == nil || !strings.Contains(err.Error(), `volume "tls"`) {
		t.Errorf("refresh with the Secret gone: %v", err)
	}
	if got := file("tls", "tls.crt"); got != "crt-2" {
		t.Errorf("tls.crt = %q after the Secret's deletion, want the last content", got)
	}
	if _, err := os.Lstat(filepath.Join(paths["opt"], "dir")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a gone optional ConfigMap's files stay (%v)", err)
	}

	// The token is renewed once due.
	for k, tok := range vols.tokens {
		tok.renewAt = time.Now().Add(-time.Second)
		vols.tokens[k] = tok
	}
	refresh("sa")
	if got := file("sa", "token"); tokens != 2 || got != "token-2" {
		t.Errorf("after its renewal time: %d token requests, token %q", tokens, got)
	}
}

// TestWorkerRefreshesVolumesWhenDue: the pod worker leaves the volumes
// alone until the refresh period is over, except that new labels make it
// refresh at once, and it schedules the next refresh one period later.
func TestWorkerRefreshesVolumesWhenDue(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "kafka"}, Data: map[string][]byte{"tls.crt": []byte("crt-1")}})
	pod := refreshPod()
	pod.Spec.Volumes = pod.Spec.Volumes[:1:1]
	pod.Spec.Volumes = append(pod.Spec.Volumes, refreshPod().Spec.Volumes[2]) // tls, podinfo
	a := &Agent{cfg: Config{NodeName: "n", Dir: t.TempDir(), VolumeRefresh: time.Hour}, cs: cs}
	w := newPodWorker(a, pod)
	w.vols = NewVolumes(Sources{CS: cs}, pod, a.cfg.PodDir(string(pod.UID)))
	paths, err := w.vols.Prepare(ctx, pod, "", "")
	if err != nil {
		t.Fatal(err)
	}
	w.sandbox, w.refreshAt = true, time.Now().Add(time.Hour)
	tlsCrt := func() string { return readString(t, filepath.Join(paths["tls"], "tls.crt")) }

	_, err = cs.CoreV1().Secrets("kafka").Update(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "kafka"}, Data: map[string][]byte{"tls.crt": []byte("crt-2")}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next := w.refreshVolumes(ctx); !next.Equal(w.refreshAt) || tlsCrt() != "crt-1" {
		t.Errorf("before it was due: next %s, tls.crt %q", next, tlsCrt())
	}
	// New labels arrive through the worker's update channel.
	relabelled := pod.DeepCopy()
	relabelled.Labels["role"] = "controller"
	w.offer(relabelled)
	var gone bool
	if w.wait(ctx, time.Time{}, &gone) || gone {
		t.Fatal("wait ended the worker")
	}
	began := time.Now()
	next := w.refreshVolumes(ctx)
	if tlsCrt() != "crt-2" || !strings.Contains(readString(t, filepath.Join(paths["podinfo"], "labels")), `role="controller"`) {
		t.Errorf("after the labels changed: tls.crt %q, labels %q", tlsCrt(), readString(t, filepath.Join(paths["podinfo"], "labels")))
	}
	if next.Before(began.Add(time.Hour)) || next.After(time.Now().Add(time.Hour)) {
		t.Errorf("next refresh at %s, want one period (1h) from now", next)
	}
}
