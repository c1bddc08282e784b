package node

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	podresource "k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// Sources fetches what env and volumes refer to. The node may only read the
// ConfigMaps and Secrets of pods bound to it (the Node authorizer), so it
// gets each by name, never lists.
type Sources struct {
	CS kubernetes.Interface
}

func (s Sources) ConfigMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	return s.CS.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s Sources) Secret(ctx context.Context, ns, name string) (*v1.Secret, error) {
	return s.CS.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// PodFieldValue resolves a fieldRef the way the kubelet does: the status
// and spec fields it knows itself, the rest (metadata) by the API's path.
func PodFieldValue(pod *v1.Pod, path, podIP, hostIP string) (string, error) {
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return fieldpath.ExtractFieldPathAsString(pod, path)
}

// ContainerEnv builds a container's environment in the kubelet's order:
// service links, then envFrom sources, then env (later entries win), each
// env value expanded with $(VAR) over the variables defined before it.
func ContainerEnv(ctx context.Context, src Sources, pod *v1.Pod, c *v1.Container, podIP, hostIP string, services []v1.EnvVar) ([]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, e := range services {
		set(e.Name, e.Value)
	}
	for _, ef := range c.EnvFrom {
		data, err := envFromData(ctx, src, pod.Namespace, ef)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		v, err := envValue(ctx, src, pod, c, e, vars, podIP, hostIP)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out, nil
}

func envValue(ctx context.Context, src Sources, pod *v1.Pod, c *v1.Container, e v1.EnvVar, vars map[string]string, podIP, hostIP string) (string, error) {
	if e.ValueFrom == nil {
		return expansion.Expand(e.Value, expansion.MappingFuncFor(vars)), nil
	}
	vf := e.ValueFrom
	switch {
	case vf.FieldRef != nil:
		return PodFieldValue(pod, vf.FieldRef.FieldPath, podIP, hostIP)
	case vf.ResourceFieldRef != nil:
		return ContainerResource(vf.ResourceFieldRef, c)
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := src.ConfigMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			return optional(ref.Optional, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return optional(ref.Optional, fmt.Errorf("key %q not in ConfigMap %s", ref.Key, ref.Name))
		}
		return v, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		s, err := src.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			return optional(ref.Optional, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return optional(ref.Optional, fmt.Errorf("key %q not in Secret %s", ref.Key, ref.Name))
		}
		return string(v), nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

func optional(opt *bool, err error) (string, error) {
	if opt != nil && *opt {
		return "", nil
	}
	return "", err
}

func envFromData(ctx context.Context, src Sources, ns string, ef v1.EnvFromSource) (map[string]string, error) {
	switch {
	case ef.ConfigMapRef != nil:
		cm, err := src.ConfigMap(ctx, ns, ef.ConfigMapRef.Name)
		if err != nil {
			_, err = optional(ef.ConfigMapRef.Optional, err)
			return nil, err
		}
		return cm.Data, nil
	case ef.SecretRef != nil:
		s, err := src.Secret(ctx, ns, ef.SecretRef.Name)
		if err != nil {
			_, err = optional(ef.SecretRef.Optional, err)
			return nil, err
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// ExpandArgs applies $(VAR) expansion to command and args over the
// container's final environment, as the kubelet does.
func ExpandArgs(words []string, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = expansion.Expand(w, expansion.MappingFuncFor(vars))
	}
	return out
}

// ContainerResource resolves a resourceFieldRef (limits default to the
// node's capacity in the kubelet; here to what the container states).
func ContainerResource(fs *v1.ResourceFieldSelector, c *v1.Container) (string, error) {
	return podresource.ExtractContainerResourceValue(fs, c)
}

// ServiceEnv is what the kubelet puts first into every container's
// environment: the `kubernetes` Service of the default namespace always,
// and with enableServiceLinks (the default) every Service of the pod's
// namespace, as FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_PORT_... variables.
func ServiceEnv(ctx context.Context, src Sources, pod *v1.Pod) ([]v1.EnvVar, error) {
	var svcs []*v1.Service
	seen := map[string]bool{}
	if k, err := src.CS.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		svcs = append(svcs, k)
		seen["kubernetes"] = true
	}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, err := src.CS.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("services for service links: %w", err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			if pod.Namespace == metav1.NamespaceDefault && seen[s.Name] {
				continue
			}
			svcs = append(svcs, s)
		}
	}
	return envvars.FromServices(svcs), nil
}
