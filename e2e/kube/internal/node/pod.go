package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// podWorker runs one pod: one goroutine owns its state; container exits
// and probe outcomes arrive as events, API updates of the pod as the latest
// object.
type podWorker struct {
	a       *Agent
	uid     types.UID
	pod     *v1.Pod
	updates chan *v1.Pod // latest object; nil: the object is gone
	events  chan any

	sandbox   bool // network and volumes are set up
	ip        netip.Addr
	volumes   map[string]string
	inits     []*ctr
	ctrs      []*ctr
	initIdx   int
	startTime *metav1.Time
	reason    string
	message   string
	lastSent  *v1.PodStatus
	lastWarn  string
	seen      time.Time // when the agent first saw the pod
}

type exitEvent struct {
	c        *ctr
	instance int
	code     int
	at       time.Time
}

type probeEvent struct {
	c        *ctr
	instance int
	kind     ProbeKind
	ok       bool
	msg      string
}

func newPodWorker(a *Agent, pod *v1.Pod) *podWorker {
	w := &podWorker{a: a, uid: pod.UID, pod: pod, updates: make(chan *v1.Pod, 1), events: make(chan any, 64), seen: time.Now()}
	for _, c := range pod.Spec.InitContainers {
		w.inits = append(w.inits, newCtr(c, true))
	}
	for _, c := range pod.Spec.Containers {
		w.ctrs = append(w.ctrs, newCtr(c, false))
	}
	return w
}

// offer hands the worker the newest object, dropping an unread older one.
func (w *podWorker) offer(p *v1.Pod) {
	for {
		select {
		case w.updates <- p:
			return
		default:
			select {
			case <-w.updates:
			default:
			}
		}
	}
}

func (w *podWorker) logf(format string, args ...any) {
	w.a.logf("pod %s/%s: %s", w.pod.Namespace, w.pod.Name, fmt.Sprintf(format, args...))
}

func (w *podWorker) run(ctx context.Context) {
	gone := false
	for {
		if gone || w.pod.DeletionTimestamp != nil {
			w.terminate(ctx, gone)
			return
		}
		next := w.sync(ctx)
		if !w.report(ctx) {
			// Not reported (API error): try again soon even without an event.
			if retry := time.Now().Add(time.Second); next.IsZero() || retry.Before(next) {
				next = retry
			}
		}
		if w.wait(ctx, next, &gone) {
			w.shutdown()
			return
		}
	}
}

// wait blocks until an update, an event, the time next (if set) or the
// end of ctx (true).
func (w *podWorker) wait(ctx context.Context, next time.Time, gone *bool) bool {
	var timer <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return true
	case p := <-w.updates:
		if p == nil {
			*gone = true
		} else {
			w.pod = p
		}
	case ev := <-w.events:
		w.handle(ev)
	case <-timer:
	}
	return false
}

// sync starts what should run now and says when to look again (zero: only
// on an event).
func (w *podWorker) sync(ctx context.Context) time.Time {
	if !w.sandbox {
		if err := w.setup(ctx); err != nil {
			w.reason, w.message = "ContainerCreating", err.Error()
			w.warn("FailedMount", err.Error())
			return time.Now().Add(3 * time.Second)
		}
		w.sandbox, w.reason, w.message = true, "", ""
	}
	for w.initIdx < len(w.inits) {
		c := w.inits[w.initIdx]
		if c.proc != nil {
			return time.Time{}
		}
		if t := c.status.State.Terminated; t != nil {
			if t.ExitCode == 0 {
				w.initIdx++
				continue
			}
			return time.Time{} // failed for good (restartPolicy Never)
		}
		return w.maybeStart(ctx, c)
	}
	var next time.Time
	for _, c := range w.ctrs {
		if c.proc != nil || c.status.State.Terminated != nil {
			continue
		}
		if n := w.maybeStart(ctx, c); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

func (w *podWorker) warn(reason, msg string) {
	if msg != w.lastWarn {
		w.lastWarn = msg
		w.a.event(w.pod, v1.EventTypeWarning, reason, msg)
	}
}

// setup gives the pod its address, network namespace, volumes and
// /etc files.
func (w *podWorker) setup(ctx context.Context) error {
	uid := string(w.uid)
	dir := w.a.cfg.PodDir(uid)
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		return err
	}
	if !w.pod.Spec.HostNetwork && !w.ip.IsValid() {
		addr, err := w.a.ipam.Allocate(uid)
		if err != nil {
			return err
		}
		if err := SetupPodNetwork(w.a.names, w.a.cfg.PodCIDR, uid, addr); err != nil {
			w.a.ipam.Release(uid)
			return err
		}
		w.ip = addr
	}
	now := metav1.Now()
	if w.startTime == nil {
		w.startTime = &now
	}
	vols, err := PrepareVolumes(ctx, Sources{CS: w.a.cs}, w.pod, dir, w.podIP(), w.a.hostIP)
	if err != nil {
		return err
	}
	w.volumes = vols
	if sc := w.pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		for _, v := range w.pod.Spec.Volumes {
			if ownsVolume(v) {
				if err := ApplyFSGroup(vols[v.Name], *sc.FSGroup, isReadOnlySource(v)); err != nil {
					return fmt.Errorf("fsGroup on volume %q: %w", v.Name, err)
				}
			}
		}
	}
	for _, path := range vols {
		if err := recordProvisioned(w.a.cfg.Dir, path); err != nil {
			return err
		}
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	files := map[string]string{
		"hosts":       HostsFile(w.pod, w.podIP()),
		"resolv.conf": ResolvConf(w.pod, w.a.cfg.ClusterDNS, string(hostResolv)),
		"hostname":    PodHostname(w.pod) + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	w.logf("sandbox ready, IP %s", w.podIP())
	return nil
}

func (w *podWorker) podIP() string {
	if w.pod.Spec.HostNetwork {
		return w.a.hostIP
	}
	if w.ip.IsValid() {
		return w.ip.String()
	}
	return ""
}

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

// containerRequest is everything needed to start one container process.
func (w *podWorker) procSpec(ctx context.Context, c *ctr, argvOverride []string) (ProcSpec, error) {
	img, err := w.a.cfg.Images.Lookup(c.spec.Image)
	if err != nil {
		return ProcSpec{}, startError{"ErrImagePull", err}
	}
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
	env = withDefaults(env, "PATH="+img.PathEnv(), "HOSTNAME="+PodHostname(w.pod), "HOME=/root")
	argv := argvOverride
	if argv == nil {
		argv, err = img.Argv(ExpandArgs(c.spec.Command, env), ExpandArgs(c.spec.Args, env))
	} else {
		argv, err = img.Argv(argv, nil)
	}
	if err != nil {
		return ProcSpec{}, startError{"RunContainerError", err}
	}
	mounts, err := w.mounts(c)
	if err != nil {
		return ProcSpec{}, startError{"CreateContainerConfigError", err}
	}
	if c.spec.WorkingDir != "" {
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

// mounts are the container's volume mounts plus the pod's /etc files.
func (w *podWorker) mounts(c *ctr) ([]Mount, error) {
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
		if err := w.a.hostPaths.Ensure(m.Source, m.Target); err != nil {
			return nil, fmt.Errorf("mount point %s: %w", m.Target, err)
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
	path := w.specPath(c, strconv.Itoa(c.instance+1))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := WriteSpec(path, spec); err != nil {
		return err
	}
	logPath := filepath.Join(w.a.cfg.LogDir(w.pod.Namespace, w.pod.Name, string(w.uid)), c.spec.Name, fmt.Sprintf("%d.log", c.status.RestartCount))
	p, err := StartProc(w.a.cfg.Self, path, logPath)
	if err != nil {
		return startError{"StartError", err}
	}
	c.instance++
	c.proc, c.killing = p, false
	now := metav1.Now()
	c.status.ContainerID = fmt.Sprintf("strom://%s-%s-%d", w.uid, c.spec.Name, c.instance)
	c.status.ImageID = "strom-image://" + Repository(c.spec.Image)
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
	w.logf("started container %s (pid %d, %s after the pod reached the agent): %s", c.spec.Name, p.cmd.Process.Pid,
		time.Since(w.seen).Round(time.Millisecond), strings.Join(spec.Argv, " "))
	return nil
}

func (w *podWorker) startProbes(ctx context.Context, c *ctr) {
	if c.isInit {
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	c.stopProbes = cancel
	c.probes = map[ProbeKind]*ProbeCounter{}
	inst := c.instance
	podIP := w.podIP()
	spec := c.spec
	for kind, p := range map[ProbeKind]*v1.Probe{Startup: c.spec.StartupProbe, Liveness: c.spec.LivenessProbe, Readiness: c.spec.ReadinessProbe} {
		if p == nil {
			continue
		}
		// Liveness and startup start out passing (a failure streak kills);
		// readiness starts out failing.
		c.probes[kind] = &ProbeCounter{Success: p.SuccessThreshold, Failure: p.FailureThreshold, Result: kind != Readiness}
		execFn := w.execIn(c)
		go func() {
			select {
			case <-pctx.Done():
				return
			case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
			}
			period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
			for {
				ok, msg := Probe(pctx, p, &spec, podIP, execFn)
				select {
				case <-pctx.Done():
					return
				case w.events <- probeEvent{c: c, instance: inst, kind: kind, ok: ok, msg: msg}:
				}
				select {
				case <-pctx.Done():
					return
				case <-time.After(period):
				}
			}
		}()
	}
}

// execIn runs a command in the container's namespaces (an exec probe):
// the same init as the container, with the probe's argv. The spec is built
// now, on the worker's goroutine.
func (w *podWorker) execIn(c *ctr) ExecFunc {
	var once sync.Once
	var path string
	var prepErr error
	base, err := w.procSpec(context.Background(), c, []string{"/bin/true"})
	return func(ctx context.Context, argv []string) (int, string, error) {
		if err != nil {
			return -1, "", err
		}
		once.Do(func() {
			path = w.specPath(c, "exec")
			prepErr = WriteSpec(path, base)
		})
		if prepErr != nil {
			return -1, "", prepErr
		}
		// Each probe gets its own spec file with its argv.
		s := base
		img, ierr := w.a.cfg.Images.Lookup(c.spec.Image)
		if ierr != nil {
			return -1, "", ierr
		}
		s.Argv, ierr = img.Argv(argv, nil)
		if ierr != nil {
			return 126, ierr.Error(), nil
		}
		raw, _ := json.Marshal(s)
		f, ferr := os.CreateTemp(filepath.Dir(path), "exec-*.json")
		if ferr != nil {
			return -1, "", ferr
		}
		defer os.Remove(f.Name())
		_, _ = f.Write(raw)
		f.Close()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, w.a.cfg.Self, "init", f.Name())
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS, Pdeathsig: syscall.SIGKILL}
		rerr := cmd.Run()
		if ctx.Err() != nil {
			return -1, out.String(), fmt.Errorf("command timed out")
		}
		var ee *exec.ExitError
		if errors.As(rerr, &ee) {
			return ee.ExitCode(), out.String(), nil
		}
		if rerr != nil {
			return -1, out.String(), rerr
		}
		return 0, out.String(), nil
	}
}

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

func (w *podWorker) probed(e probeEvent) {
	c := e.c
	pc := c.probes[e.kind]
	if pc == nil {
		return
	}
	started := ptr.Deref(c.status.Started, false)
	if e.kind != Startup && !started {
		return // liveness and readiness wait for the startup probe
	}
	if e.kind == Startup && started {
		return
	}
	changed := pc.Observe(e.ok)
	if !e.ok {
		w.a.event(w.pod, v1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", e.kind, e.msg))
	}
	switch e.kind {
	case Startup:
		if e.ok {
			c.status.Started = ptr.To(true)
			c.status.Ready = c.spec.ReadinessProbe == nil
		} else if changed {
			w.kill(c, "failed startup probe, will be restarted")
		}
	case Liveness:
		if changed && !pc.Result {
			w.kill(c, "failed liveness probe, will be restarted")
		}
	case Readiness:
		c.status.Ready = pc.Result
	}
}

// kill stops a container the way a failed probe does (its grace period,
// then SIGKILL); the exit event restarts it per the restart policy.
func (w *podWorker) kill(c *ctr, why string) {
	if c.killing || c.proc == nil {
		return
	}
	c.killing = true
	w.a.event(w.pod, v1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s %s", c.spec.Name, why))
	grace := w.grace(nil)
	p := c.proc
	go p.Stop(grace)
}

// grace is the termination grace period: the deletion's, else the spec's.
func (w *podWorker) grace(override *int64) time.Duration {
	g := int64(30)
	if w.pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *w.pod.Spec.TerminationGracePeriodSeconds
	}
	if override != nil {
		g = *override
	}
	return time.Duration(g) * time.Second
}

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

// stopAll stops every running container with grace and waits.
func (w *podWorker) stopAll(grace time.Duration, announce bool) {
	var wg sync.WaitGroup
	for _, c := range append(append([]*ctr{}, w.inits...), w.ctrs...) {
		if c.proc == nil {
			continue
		}
		if announce {
			w.a.event(w.pod, v1.EventTypeNormal, "Killing", fmt.Sprintf("Stopping container %s", c.spec.Name))
		}
		if c.stopProbes != nil {
			c.stopProbes()
		}
		wg.Add(1)
		go func(p *Proc) {
			defer wg.Done()
			p.Stop(grace)
		}(c.proc)
	}
	wg.Wait()
	// The exit events are queued; apply them so the status says terminated.
	for {
		select {
		case ev := <-w.events:
			if e, ok := ev.(exitEvent); ok && e.instance == e.c.instance {
				e.c.proc = nil
				started := metav1.Now()
				if r := e.c.status.State.Running; r != nil {
					started = r.StartedAt
				}
				e.c.status.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: int32(e.code), Reason: "Error", StartedAt: started, FinishedAt: metav1.NewTime(e.at), ContainerID: e.c.status.ContainerID}}
				if e.code == 0 {
					e.c.status.State.Terminated.Reason = "Completed"
				}
				e.c.status.Ready = false
			}
		default:
			if w.anyRunning() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
	}
}

func (w *podWorker) anyRunning() bool {
	for _, c := range append(append([]*ctr{}, w.inits...), w.ctrs...) {
		if c.proc != nil {
			return true
		}
	}
	return false
}

// cleanup removes the pod's network and files (its emptyDirs with them).
func (w *podWorker) cleanup() {
	uid := string(w.uid)
	if err := TeardownPodNetwork(w.a.names, uid); err != nil {
		w.logf("network teardown: %v", err)
	}
	w.a.ipam.Release(uid)
	if err := os.RemoveAll(w.a.cfg.PodDir(uid)); err != nil {
		w.logf("remove pod dir: %v", err)
	}
}

// terminate is a graceful deletion: stop the containers within the
// deletion's grace period, report, clean up, then remove the object (grace
// 0, for this UID only), which is the kubelet's part of a pod deletion.
func (w *podWorker) terminate(ctx context.Context, gone bool) {
	grace := w.grace(w.pod.DeletionGracePeriodSeconds)
	w.logf("terminating (grace %s)", grace)
	w.stopAll(grace, true)
	if !gone {
		w.report(ctx)
	}
	w.cleanup()
	_ = os.RemoveAll(w.a.cfg.LogDir(w.pod.Namespace, w.pod.Name, string(w.uid)))
	if gone {
		return
	}
	err := w.a.cs.CoreV1().Pods(w.pod.Namespace).Delete(ctx, w.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &w.uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.logf("delete: %v", err)
	}
}

// shutdown is the agent stopping: containers get at most a few seconds, as
// `sandbox down` allows the agent 15 s in all, and the pod objects stay.
func (w *podWorker) shutdown() {
	w.stopAll(min(w.grace(nil), 5*time.Second), false)
	w.cleanup()
}
