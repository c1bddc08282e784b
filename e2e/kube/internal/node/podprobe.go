package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

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
	if c.proc != nil && c.proc.podman != "" {
		return podmanExec(c.proc.podman)
	}
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
		cmd := exec.CommandContext(ctx, w.a.cfg.Self, "init", f.Name())
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS, Pdeathsig: syscall.SIGKILL}
		return runExecProbe(ctx, cmd)
	}
}

// runExecProbe runs an exec probe's command (a process container's `node-agent
// init` or a podman container's `podman exec`): its exit code and output; a
// non-zero exit is the probe's answer, not an error.
func runExecProbe(ctx context.Context, cmd *exec.Cmd) (int, string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, out.String(), fmt.Errorf("command timed out")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), nil
	}
	if err != nil {
		return -1, out.String(), err
	}
	return 0, out.String(), nil
}

// probed applies one probe outcome: startup gates the others, liveness and
// startup failures kill, readiness sets ready.
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
