package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	volumes   map[string]string // volume name → its path on the host
	vols      *Volumes          // writes them, and refreshes the generated ones
	refreshAt time.Time         // when the generated volumes are read again (zero: now)
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
			if metadataChanged(w.pod, p) {
				w.refreshAt = time.Time{} // downwardAPI files follow at once
			}
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
	refresh := w.refreshVolumes(ctx)
	return earliest(w.syncContainers(ctx), refresh)
}

// earliest of two wake-up times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// syncContainers starts the containers that should run now and says when
// to look again (zero: only on an event).
func (w *podWorker) syncContainers(ctx context.Context) time.Time {
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
	if w.vols == nil {
		w.vols = NewVolumes(Sources{CS: w.a.cs}, w.pod, dir)
	}
	vols, err := w.vols.Prepare(ctx, w.pod, w.podIP(), w.a.hostIP)
	if err != nil {
		return err
	}
	w.volumes = vols
	w.refreshAt = time.Now().Add(w.a.cfg.VolumeRefreshPeriod())
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
