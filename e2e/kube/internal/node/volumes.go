package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// PrepareVolumes puts every pod volume in place on the host and returns
// where each one is (the bind-mount source for its mounts). Generated
// volumes (configMap, secret, downwardAPI, projected) are written once, at
// pod start: the agent does not follow later changes of their sources.
func PrepareVolumes(ctx context.Context, src Sources, pod *v1.Pod, podDir, podIP, hostIP string) (map[string]string, error) {
	out := map[string]string{}
	for _, vol := range pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", vol.Name)
		path, err := prepareVolume(ctx, src, pod, vol, dir, podIP, hostIP)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		out[vol.Name] = path
	}
	return out, nil
}

func prepareVolume(ctx context.Context, src Sources, pod *v1.Pod, vol v1.Volume, dir, podIP, hostIP string) (string, error) {
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
	case vs.ConfigMap != nil:
		files, err := configMapFiles(ctx, src, pod.Namespace, vs.ConfigMap.Name, vs.ConfigMap.Items, vs.ConfigMap.Optional)
		if err != nil {
			return "", err
		}
		return dir, writeFiles(dir, files, mode(vs.ConfigMap.DefaultMode))
	case vs.Secret != nil:
		files, err := secretFiles(ctx, src, pod.Namespace, vs.Secret.SecretName, vs.Secret.Items, vs.Secret.Optional)
		if err != nil {
			return "", err
		}
		return dir, writeFiles(dir, files, mode(vs.Secret.DefaultMode))
	case vs.DownwardAPI != nil:
		files, err := downwardFiles(pod, vs.DownwardAPI.Items, podIP, hostIP)
		if err != nil {
			return "", err
		}
		return dir, writeFiles(dir, files, mode(vs.DownwardAPI.DefaultMode))
	case vs.Projected != nil:
		files := map[string][]byte{}
		for _, s := range vs.Projected.Sources {
			part, err := projectedFiles(ctx, src, pod, s, podIP, hostIP)
			if err != nil {
				return "", err
			}
			for k, v := range part {
				files[k] = v
			}
		}
		return dir, writeFiles(dir, files, mode(vs.Projected.DefaultMode))
	}
	return "", fmt.Errorf("volume type not supported by the node agent (configMap, secret, emptyDir, downwardAPI, projected, hostPath, persistentVolumeClaim are)")
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m)
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

func keyFiles(data map[string][]byte, items []v1.KeyToPath, what string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = v
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("key %q not in %s", it.Key, what)
		}
		out[it.Path] = v
	}
	return out, nil
}

func configMapFiles(ctx context.Context, src Sources, ns, name string, items []v1.KeyToPath, opt *bool) (map[string][]byte, error) {
	cm, err := src.ConfigMap(ctx, ns, name)
	if err != nil {
		if ptr.Deref(opt, false) {
			return map[string][]byte{}, nil
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
	return keyFiles(data, items, "ConfigMap "+name)
}

func secretFiles(ctx context.Context, src Sources, ns, name string, items []v1.KeyToPath, opt *bool) (map[string][]byte, error) {
	s, err := src.Secret(ctx, ns, name)
	if err != nil {
		if ptr.Deref(opt, false) {
			return map[string][]byte{}, nil
		}
		return nil, err
	}
	return keyFiles(s.Data, items, "Secret "+name)
}

func downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, podIP, hostIP string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, it := range items {
		switch {
		case it.FieldRef != nil:
			v, err := PodFieldValue(pod, it.FieldRef.FieldPath, podIP, hostIP)
			if err != nil {
				return nil, err
			}
			out[it.Path] = []byte(v)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("container %q not in pod", it.ResourceFieldRef.ContainerName)
			}
			v, err := ContainerResource(it.ResourceFieldRef, c)
			if err != nil {
				return nil, err
			}
			out[it.Path] = []byte(v)
		}
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

// projectedFiles covers the sources of a projected volume; the service
// account token is asked for with TokenRequest, bound to this pod (the
// NodeRestriction admission plugin requires exactly that of a node).
func projectedFiles(ctx context.Context, src Sources, pod *v1.Pod, s v1.VolumeProjection, podIP, hostIP string) (map[string][]byte, error) {
	switch {
	case s.ConfigMap != nil:
		return configMapFiles(ctx, src, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional)
	case s.Secret != nil:
		return secretFiles(ctx, src, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional)
	case s.DownwardAPI != nil:
		return downwardFiles(pod, s.DownwardAPI.Items, podIP, hostIP)
	case s.ServiceAccountToken != nil:
		t := s.ServiceAccountToken
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
		tok, err := src.CS.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token for service account %s: %w", sa, err)
		}
		return map[string][]byte{t.Path: []byte(tok.Status.Token)}, nil
	}
	return map[string][]byte{}, nil
}

// writeFiles writes the generated files of one volume afresh.
func writeFiles(dir string, files map[string][]byte, m os.FileMode) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.Clean("/"+rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, m); err != nil {
			return err
		}
		if err := os.Chmod(p, m); err != nil {
			return err
		}
	}
	return nil
}
