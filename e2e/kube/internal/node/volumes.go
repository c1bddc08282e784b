package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Volumes are one pod's volumes on the host. The generated ones
// (configMap, secret, downwardAPI, projected) are written in the kubelet's
// atomic-writer layout (atomicdir.go) at pod start, and Refresh writes them
// again when their sources changed, as the kubelet's periodic remount does:
// a running pod sees a renewed Secret in its mounted files. Files mounted
// with subPath are bind mounts of one version's file and keep it, as on a
// kubelet.
type Volumes struct {
	src     Sources
	podDir  string
	fsGroup *int64
	tokens  map[string]issuedToken // projected service-account tokens, by volume/path
}

// issuedToken is a service-account token the pod has, kept until the
// kubelet would renew it.
type issuedToken struct {
	token   string
	renewAt time.Time
}

func NewVolumes(src Sources, pod *v1.Pod, podDir string) *Volumes {
	v := &Volumes{src: src, podDir: podDir, tokens: map[string]issuedToken{}}
	if sc := pod.Spec.SecurityContext; sc != nil {
		v.fsGroup = sc.FSGroup
	}
	return v
}

func (vs *Volumes) dir(name string) string { return filepath.Join(vs.podDir, "volumes", name) }

// isGenerated: the volume types whose content the agent writes from API
// objects and the pod itself.
func isGenerated(v v1.Volume) bool {
	s := v.VolumeSource
	return s.ConfigMap != nil || s.Secret != nil || s.DownwardAPI != nil || s.Projected != nil
}

// Prepare puts every pod volume in place on the host and returns where
// each one is (the bind-mount source for its mounts).
func (vs *Volumes) Prepare(ctx context.Context, pod *v1.Pod, podIP, hostIP string) (map[string]string, error) {
	out := map[string]string{}
	for _, vol := range pod.Spec.Volumes {
		dir := vs.dir(vol.Name)
		var err error
		if isGenerated(vol) {
			// Afresh: nothing of an earlier attempt at this pod stays.
			if err = os.RemoveAll(dir); err == nil {
				_, err = vs.write(ctx, pod, vol, podIP, hostIP)
			}
			out[vol.Name] = dir
		} else {
			out[vol.Name], err = prepareVolume(ctx, vs.src, pod, vol, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", vol.Name, err)
		}
	}
	return out, nil
}

// Refresh reads the sources of the generated volumes again and writes the
// ones whose content changed, returning their names. A volume whose
// sources cannot be read keeps its content (a deleted Secret's files stay,
// as on a kubelet; an optional one that is gone empties the volume, as
// there); the errors come back joined.
func (vs *Volumes) Refresh(ctx context.Context, pod *v1.Pod, podIP, hostIP string) ([]string, error) {
	var updated []string
	var errs []error
	for _, vol := range pod.Spec.Volumes {
		if !isGenerated(vol) {
			continue
		}
		wrote, err := vs.write(ctx, pod, vol, podIP, hostIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", vol.Name, err))
		}
		if wrote {
			updated = append(updated, vol.Name)
		}
	}
	return updated, errors.Join(errs...)
}

// write brings one generated volume up to date; true if it wrote.
func (vs *Volumes) write(ctx context.Context, pod *v1.Pod, vol v1.Volume, podIP, hostIP string) (bool, error) {
	files, err := vs.files(ctx, pod, vol, podIP, hostIP)
	if err != nil {
		return false, err
	}
	d := AtomicDir{Dir: vs.dir(vol.Name)}
	if vs.fsGroup != nil {
		// Before the version becomes visible, so the pod never meets a
		// file its group cannot read. Generated volumes are read-only.
		gid := *vs.fsGroup
		d.Prepare = func(version string) error { return ApplyFSGroup(version, gid, true) }
	}
	return d.Write(files)
}

// files is the content a generated volume should have now.
func (vs *Volumes) files(ctx context.Context, pod *v1.Pod, vol v1.Volume, podIP, hostIP string) (map[string]VolumeFile, error) {
	s := vol.VolumeSource
	switch {
	case s.ConfigMap != nil:
		return configMapFiles(ctx, vs.src, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, mode(s.ConfigMap.DefaultMode))
	case s.Secret != nil:
		return secretFiles(ctx, vs.src, pod.Namespace, s.Secret.SecretName, s.Secret.Items, s.Secret.Optional, mode(s.Secret.DefaultMode))
	case s.DownwardAPI != nil:
		return downwardFiles(pod, s.DownwardAPI.Items, podIP, hostIP, mode(s.DownwardAPI.DefaultMode))
	case s.Projected != nil:
		files := map[string]VolumeFile{}
		for _, p := range s.Projected.Sources {
			part, err := vs.projectedFiles(ctx, pod, vol.Name, p, podIP, hostIP, mode(s.Projected.DefaultMode))
			if err != nil {
				return nil, err
			}
			maps.Copy(files, part)
		}
		return files, nil
	}
	return nil, errors.New("not a generated volume")
}

// prepareVolume puts a volume the agent does not generate in place.
func prepareVolume(ctx context.Context, src Sources, pod *v1.Pod, vol v1.Volume, dir string) (string, error) {
	vs := vol.VolumeSource
	switch {
	case vs.EmptyDir != nil:
		// 0777 as the kubelet makes it: any runAsUser may write.
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		return dir, os.Chmod(dir, 0o777)
	case vs.HostPath != nil:
		t := ptr.Deref(vs.HostPath.Type, v1.HostPathUnset)
		if t == v1.HostPathDirectoryOrCreate {
			if err := os.MkdirAll(vs.HostPath.Path, 0o755); err != nil {
				return "", err
			}
		} else if _, err := os.Stat(vs.HostPath.Path); err != nil && t != v1.HostPathUnset {
			return "", err
		}
		return vs.HostPath.Path, nil
	case vs.PersistentVolumeClaim != nil:
		return claimPath(ctx, src, pod.Namespace, vs.PersistentVolumeClaim.ClaimName)
	}
	return "", fmt.Errorf("volume type not supported by the node agent (configMap, secret, emptyDir, downwardAPI, projected, hostPath, persistentVolumeClaim are)")
}

// mode is a volume's defaultMode, or an item's mode over it.
func mode(m *int32) os.FileMode { return itemMode(m, 0o644) }

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}

// claimPath resolves a claim to its bound PersistentVolume's directory. Only
// PVs the node can reach as a directory (hostPath, local) are supported.
func claimPath(ctx context.Context, src Sources, ns, claim string) (string, error) {
	pvc, err := src.CS.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != v1.ClaimBound {
		return "", fmt.Errorf("claim %s is not bound yet", claim)
	}
	pv, err := src.CS.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	switch {
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, os.MkdirAll(pv.Spec.HostPath.Path, 0o777)
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("PersistentVolume %s is neither hostPath nor local", pv.Name)
}

// keyFiles picks a ConfigMap's or Secret's keys: all of them, or the items
// (a missing key is an error unless the source is optional, as on a
// kubelet).
func keyFiles(data map[string][]byte, items []v1.KeyToPath, def os.FileMode, optional bool, what string) (map[string]VolumeFile, error) {
	out := map[string]VolumeFile{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = VolumeFile{Data: v, Mode: def}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("key %q not in %s", it.Key, what)
		}
		out[it.Path] = VolumeFile{Data: v, Mode: itemMode(it.Mode, def)}
	}
	return out, nil
}

// configMapFiles: only NotFound makes an optional ConfigMap empty; any
// other error (the API server unreachable) must not wipe a volume.
func configMapFiles(ctx context.Context, src Sources, ns, name string, items []v1.KeyToPath, opt *bool, def os.FileMode) (map[string]VolumeFile, error) {
	optional := ptr.Deref(opt, false)
	cm, err := src.ConfigMap(ctx, ns, name)
	if err != nil {
		if optional && apierrors.IsNotFound(err) {
			return map[string]VolumeFile{}, nil
		}
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, def, optional, "ConfigMap "+name)
}

func secretFiles(ctx context.Context, src Sources, ns, name string, items []v1.KeyToPath, opt *bool, def os.FileMode) (map[string]VolumeFile, error) {
	optional := ptr.Deref(opt, false)
	s, err := src.Secret(ctx, ns, name)
	if err != nil {
		if optional && apierrors.IsNotFound(err) {
			return map[string]VolumeFile{}, nil
		}
		return nil, err
	}
	return keyFiles(s.Data, items, def, optional, "Secret "+name)
}

func downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, podIP, hostIP string, def os.FileMode) (map[string]VolumeFile, error) {
	out := map[string]VolumeFile{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = PodFieldValue(pod, it.FieldRef.FieldPath, podIP, hostIP)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("container %q not in pod", it.ResourceFieldRef.ContainerName)
			}
			v, err = ContainerResource(it.ResourceFieldRef, c)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		out[it.Path] = VolumeFile{Data: []byte(v), Mode: itemMode(it.Mode, def)}
	}
	return out, nil
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// projectedFiles covers the sources of a projected volume.
func (vs *Volumes) projectedFiles(ctx context.Context, pod *v1.Pod, vol string, s v1.VolumeProjection, podIP, hostIP string, def os.FileMode) (map[string]VolumeFile, error) {
	switch {
	case s.ConfigMap != nil:
		return configMapFiles(ctx, vs.src, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, def)
	case s.Secret != nil:
		return secretFiles(ctx, vs.src, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional, def)
	case s.DownwardAPI != nil:
		return downwardFiles(pod, s.DownwardAPI.Items, podIP, hostIP, def)
	case s.ServiceAccountToken != nil:
		tok, err := vs.token(ctx, pod, vol, s.ServiceAccountToken)
		if err != nil {
			return nil, err
		}
		return map[string]VolumeFile{s.ServiceAccountToken.Path: {Data: []byte(tok), Mode: def}}, nil
	}
	return map[string]VolumeFile{}, nil
}

// token is the pod's service-account token for one projection: asked for
// with TokenRequest, bound to this pod (the NodeRestriction admission
// plugin requires exactly that of a node), and renewed as the kubelet's
// token manager does, once 80% of its lifetime or 24 h have passed.
func (vs *Volumes) token(ctx context.Context, pod *v1.Pod, vol string, t *v1.ServiceAccountTokenProjection) (string, error) {
	key := vol + "/" + t.Path
	now := time.Now()
	if have, ok := vs.tokens[key]; ok && now.Before(have.renewAt) {
		return have.token, nil
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: t.ExpirationSeconds,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if t.Audience != "" {
		req.Spec.Audiences = []string{t.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tok, err := vs.src.CS.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s: %w", sa, err)
	}
	life := time.Duration(ptr.Deref(t.ExpirationSeconds, 3600)) * time.Second
	if exp := tok.Status.ExpirationTimestamp.Time; exp.After(now) {
		life = exp.Sub(now)
	}
	vs.tokens[key] = issuedToken{token: tok.Status.Token, renewAt: now.Add(min(life*8/10, 24*time.Hour))}
	return tok.Status.Token, nil
}
