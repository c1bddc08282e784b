package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func (w *podWorker) maybeStart(ctx context.Context, c *ctr) time.Time {
	if time.Now().Before(c.notBefore) {
		return c.notBefore
	}
	if err := w.start(ctx, c); err != nil {
		c.failures++
		c.notBefore = time.Now().Add(backoff(c.failures))
		return c.notBefore
	}
	return time.Time{}
}

// startError is a container that could not be started, with the waiting
// reason the kubelet would show.
type startError struct {
	reason string
	err    error
}

func (e startError) Error() string { return e.err.Error() }

func (w *podWorker) start(ctx context.Context, c *ctr) error {
	err := w.startProcess(ctx, c)
	if err == nil {
		return nil
	}
	var se startError
	if !errors.As(err, &se) {
		se = startError{reason: "RunContainerError", err: err}
	}
	reason := se.reason
	if reason == "ErrImagePull" && c.failures > 0 {
		reason = "ImagePullBackOff"
	}
	c.status.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason, Message: se.Error()}}
	evReason := "Failed"
	if se.reason == "ErrImagePull" {
		w.a.event(w.pod, v1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.spec.Image, se.err))
		if c.failures > 0 {
			w.a.event(w.pod, v1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.spec.Image))
		}
		w.a.event(w.pod, v1.EventTypeWarning, evReason, "Error: "+reason)
	} else {
		w.a.event(w.pod, v1.EventTypeWarning, evReason, fmt.Sprintf("Error: %v", se.err))
	}
	w.logf("container %s: %s: %v", c.spec.Name, reason, se.err)
	return err
}

// procSpec is everything init needs to become one container process (or,
// with argvOverride, an exec probe in its namespaces).
func (w *podWorker) procSpec(ctx context.Context, c *ctr, argvOverride []string) (ProcSpec, error) {
	img, err := w.a.cfg.Images.Lookup(c.spec.Image)
	if err != nil {
		return ProcSpec{}, startError{"ErrImagePull", err}
	}
	// A podman container resolves its command in its image, gets the image's
	// PATH and HOME, and needs no mount points on the host.
	podman := img.Runtime == RuntimePodman
	uid, gid, groups, nonRoot := identity(w.pod, &c.spec)
	if nonRoot && (uid == nil || *uid == 0) {
		return ProcSpec{}, startError{"CreateContainerConfigError", errors.New("container has runAsNonRoot and image will run as root")}
	}
	services, err := ServiceEnv(ctx, Sources{CS: w.a.cs}, w.pod)
	if err != nil {
		return ProcSpec{}, startError{"CreateContainerConfigError", err}
	}
	env, err := ContainerEnv(ctx, Sources{CS: w.a.cs}, w.pod, &c.spec, w.podIP(), w.a.hostIP, services)
	if err != nil {
		return ProcSpec{}, startError{"CreateContainerConfigError", err}
	}
	if !podman {
		env = withDefaults(env, "PATH="+img.PathEnv(), "HOSTNAME="+PodHostname(w.pod), "HOME=/root")
	}
	var argv []string
	switch {
	case podman: // podman takes the container's command and args (podman.go)
	case argvOverride != nil:
		argv, err = img.Argv(argvOverride, nil)
	default:
		argv, err = img.Argv(ExpandArgs(c.spec.Command, env), ExpandArgs(c.spec.Args, env))
	}
	if err != nil {
		return ProcSpec{}, startError{"RunContainerError", err}
	}
	mounts, err := w.mounts(c, !podman)
	if err != nil {
		return ProcSpec{}, startError{"CreateContainerConfigError", err}
	}
	if c.spec.WorkingDir != "" && !podman {
		if err := w.a.hostPaths.Ensure("/", c.spec.WorkingDir); err != nil {
			return ProcSpec{}, startError{"CreateContainerError", err}
		}
	}
	s := ProcSpec{Hostname: PodHostname(w.pod), Mounts: mounts, Dir: c.spec.WorkingDir, UID: uid, GID: gid, Groups: groups, Argv: argv, Env: env}
	if !w.pod.Spec.HostNetwork {
		s.Netns = NetnsPath(w.a.names.Netns(string(w.uid)))
	} else {
		s.Netns = "/proc/1/ns/net"
	}
	return s, nil
}

// withDefaults adds variables the container did not set itself.
func withDefaults(env []string, defaults ...string) []string {
	have := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		have[k] = true
	}
	for _, kv := range defaults {
		k, _, _ := strings.Cut(kv, "=")
		if !have[k] {
			env = append(env, kv)
		}
	}
	return env
}

// mounts are the container's volume mounts plus the pod's /etc files;
// hostTargets makes missing mount points on the host (a process container
// shares the host's filesystem).
func (w *podWorker) mounts(c *ctr, hostTargets bool) ([]Mount, error) {
	dir := w.a.cfg.PodDir(string(w.uid))
	var out []Mount
	if !w.pod.Spec.HostNetwork {
		for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
			out = append(out, Mount{Source: filepath.Join(dir, "etc", f), Target: "/etc/" + f})
		}
	}
	vols := map[string]v1.Volume{}
	for _, v := range w.pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, vm := range c.spec.VolumeMounts {
		src, ok := w.volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume %q not in the pod", vm.Name)
		}
		if vm.SubPath != "" {
			src = filepath.Join(src, filepath.Clean("/"+vm.SubPath))
			if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
			}
		}
		m := Mount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly || isReadOnlySource(vols[vm.Name])}
		if hostTargets {
			if err := w.a.hostPaths.Ensure(m.Source, m.Target); err != nil {
				return nil, fmt.Errorf("mount point %s: %w", m.Target, err)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func (w *podWorker) specPath(c *ctr, what string) string {
	return filepath.Join(w.a.cfg.PodDir(string(w.uid)), "specs", fmt.Sprintf("%s-%s.json", c.spec.Name, what))
}

func (w *podWorker) startProcess(ctx context.Context, c *ctr) error {
	spec, err := w.procSpec(ctx, c, nil)
	if err != nil {
		return err
	}
	logPath := filepath.Join(w.a.cfg.LogDir(w.pod.Namespace, w.pod.Name, string(w.uid)), c.spec.Name, fmt.Sprintf("%d.log", c.status.RestartCount))
	containerID := fmt.Sprintf("strom://%s-%s-%d", w.uid, c.spec.Name, c.instance+1)
	imageID := "strom-image://" + Repository(c.spec.Image)
	var p *Proc
	if img, _ := w.a.cfg.Images.Lookup(c.spec.Image); img.Runtime == RuntimePodman {
		if p, imageID, err = w.startPodman(ctx, c, spec, logPath); err != nil {
			return err
		}
		containerID = "podman://" + p.podman
	} else {
		path := w.specPath(c, strconv.Itoa(c.instance+1))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := WriteSpec(path, spec); err != nil {
			return err
		}
		if p, err = StartProc(w.a.cfg.Self, path, logPath); err != nil {
			return startError{"StartError", err}
		}
	}
	c.instance++
	c.proc, c.killing = p, false
	now := metav1.Now()
	c.status.ContainerID = containerID
	c.status.ImageID = imageID
	c.status.State = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}
	c.status.Started = ptr.To(c.spec.StartupProbe == nil)
	c.status.Ready = !c.isInit && c.spec.ReadinessProbe == nil && c.spec.StartupProbe == nil
	inst := c.instance
	go func() {
		<-p.Done()
		w.events <- exitEvent{c: c, instance: inst, code: p.Code(), at: time.Now()}
	}()
	w.startProbes(ctx, c)
	w.a.event(w.pod, v1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s", c.spec.Name))
	what := strings.Join(spec.Argv, " ")
	if p.podman != "" {
		what = "podman container " + p.podman + " of " + c.spec.Image
	}
	w.logf("started container %s (pid %d, %s after the pod reached the agent): %s", c.spec.Name, p.cmd.Process.Pid,
		time.Since(w.seen).Round(time.Millisecond), what)
	return nil
}
