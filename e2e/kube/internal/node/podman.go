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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"golang.org/x/sys/unix"
)

// The second way to run a container: an image whose table entry says
// "runtime": "podman" runs from the real image with `podman run`, in the
// pod's network namespace, with the pod spec's user, groups, read-only root,
// capabilities, volumes and /etc files. So the project's image and the pod
// spec the operator renders are tested together; every other image still runs
// as a process (process.go, initproc.go).

// RuntimePodman is the image table's value for images run by podman.
const RuntimePodman = "podman"

// PodmanAgentLabel marks every container an agent started with the hash of
// its state directory (Names), so a stop and `sandbox down` after a killed
// agent find what is left.
const PodmanAgentLabel = "dev.strom.node-agent"

// podmanGlobal are the arguments before podman's subcommand. crun, podman's
// default OCI runtime, does not work on the project's machines; runc does.
var podmanGlobal = []string{"--runtime", "runc"}

// podmanExitWait bounds how long `podman run` may take to return after its
// container was sent SIGKILL before it is killed itself.
const podmanExitWait = 10 * time.Second

// PodmanSpec is one `podman run`: what the process path's ProcSpec has
// (network namespace, hostname, mounts, identity, env) plus what only a real
// image honours (read-only root, capabilities) and the container's own
// command and args, which podman resolves inside the image.
type PodmanSpec struct {
	Name       string
	Image      string
	Labels     map[string]string
	Proc       ProcSpec // Argv unused: Entrypoint and Args are the container's
	Entrypoint []string // the container's command; nil: the image's ENTRYPOINT
	Args       []string
	ReadOnly   bool // readOnlyRootFilesystem
	CapDrop    []string
	CapAdd     []string
	NoNewPrivs bool     // allowPrivilegeEscalation: false
	Ulimits    []string // "nofile=SOFT:HARD", ...
}

// podmanSpecFor is the podman run of container c of pod: its security context
// applied over the process path's spec. env is the container's environment,
// which $(VAR) in command and args expands over.
func podmanSpecFor(pod *v1.Pod, c *v1.Container, proc ProcSpec, name string, ulimits []string) PodmanSpec {
	s := PodmanSpec{
		Name:  name,
		Image: c.Image,
		Labels: map[string]string{
			PodmanAgentLabel:               "",
			"io.kubernetes.pod.namespace":  pod.Namespace,
			"io.kubernetes.pod.name":       pod.Name,
			"io.kubernetes.pod.uid":        string(pod.UID),
			"io.kubernetes.container.name": c.Name,
		},
		Proc:    proc,
		Ulimits: ulimits,
	}
	if len(c.Command) > 0 {
		s.Entrypoint = ExpandArgs(c.Command, proc.Env)
	}
	s.Args = ExpandArgs(c.Args, proc.Env)
	if sc := c.SecurityContext; sc != nil {
		s.ReadOnly = ptr.Deref(sc.ReadOnlyRootFilesystem, false)
		s.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		if caps := sc.Capabilities; caps != nil {
			for _, cp := range caps.Drop {
				s.CapDrop = append(s.CapDrop, string(cp))
			}
			for _, cp := range caps.Add {
				s.CapAdd = append(s.CapAdd, string(cp))
			}
		}
	}
	return s
}

// RunArgs is the podman command line (after `podman`) that runs s in the
// foreground: its exit status is the container's (128+signal when killed),
// its output goes straight to podman's stdout and stderr (the passthrough log
// driver hands the container our file descriptors), --rm removes it after.
func (s PodmanSpec) RunArgs() ([]string, error) {
	a := append(append([]string{}, podmanGlobal...), "run", "--rm", "--pull=never", "--log-driver=passthrough", "--name", s.Name)
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a = append(a, "--label", k+"="+s.Labels[k])
	}
	p := s.Proc
	if p.Netns == "/proc/1/ns/net" {
		a = append(a, "--network", "host")
	} else {
		a = append(a, "--network", "ns:"+p.Netns, "--hostname", p.Hostname)
	}
	switch {
	case p.UID != nil && p.GID != nil:
		a = append(a, "--user", fmt.Sprintf("%d:%d", *p.UID, *p.GID))
	case p.UID != nil:
		a = append(a, "--user", strconv.FormatInt(*p.UID, 10))
	case p.GID != nil:
		// podman's --user needs the user; the image's is not known here.
		return nil, errors.New("runAsGroup without runAsUser is not supported for podman containers")
	}
	for _, g := range p.Groups {
		a = append(a, "--group-add", strconv.FormatInt(g, 10))
	}
	if s.ReadOnly {
		// No tmpfs on /tmp, /var/tmp, /run either: the kubelet adds none.
		a = append(a, "--read-only", "--read-only-tmpfs=false")
	}
	for _, cp := range s.CapDrop {
		a = append(a, "--cap-drop", cp)
	}
	for _, cp := range s.CapAdd {
		a = append(a, "--cap-add", cp)
	}
	if s.NoNewPrivs {
		a = append(a, "--security-opt", "no-new-privileges")
	}
	if p.Dir != "" {
		a = append(a, "--workdir", p.Dir)
	}
	for _, u := range s.Ulimits {
		a = append(a, "--ulimit", u)
	}
	for _, kv := range p.Env {
		a = append(a, "--env", kv)
	}
	for _, m := range p.Mounts {
		// --mount's options are comma-separated; -v's colon-separated.
		if strings.ContainsAny(m.Source+m.Target, ",") {
			return nil, fmt.Errorf("mount %s on %s: a comma in a path cannot be passed to podman --mount", m.Source, m.Target)
		}
		opt := "type=bind,source=" + m.Source + ",destination=" + m.Target
		if m.ReadOnly {
			opt += ",ro=true"
		}
		a = append(a, "--mount", opt)
	}
	if s.Entrypoint != nil {
		raw, err := json.Marshal(s.Entrypoint)
		if err != nil {
			return nil, err
		}
		a = append(a, "--entrypoint", string(raw))
	}
	return append(append(a, s.Image), s.Args...), nil
}

// podman runs a short podman command and returns its output.
func podman(ctx context.Context, args ...string) (string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, podmanGlobal...), args...)...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// podmanNprocCeiling: podman 4 lowers its own process limit to 32768 (seen
// in /proc/<podman>/limits), and runc, its descendant, cannot raise a hard
// limit without CAP_SYS_RESOURCE, which the project's machines do not give.
const podmanNprocCeiling = 32768

// podmanUlimits are the agent's own open-file and process limits, which a
// process container inherits. podman's defaults (1048576 each for root) and
// `--ulimit host` exceed the hard limits there, and runc then fails with
// "error setting rlimit type 6 (or 7): operation not permitted".
func podmanUlimits() []string {
	var out []string
	for name, res := range map[string]int{"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC} {
		var rl unix.Rlimit
		if err := unix.Getrlimit(res, &rl); err != nil {
			continue
		}
		if res == unix.RLIMIT_NPROC {
			rl.Cur, rl.Max = min(rl.Cur, podmanNprocCeiling), min(rl.Max, podmanNprocCeiling)
		}
		out = append(out, fmt.Sprintf("%s=%s:%s", name, rlimitValue(rl.Cur), rlimitValue(rl.Max)))
	}
	sort.Strings(out)
	return out
}

func rlimitValue(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}

// PodmanRecord is the file whose presence says the agent with state dir
// started podman containers: only then does a cleanup ask podman, so a
// machine without (working) podman never has its `sandbox down` fail.
func PodmanRecord(dir string) string { return filepath.Join(dir, "podman-containers") }

// CleanupContainers removes every podman container the agent with state dir
// started (a killed agent's: `podman run` dies with it, the container under
// conmon does not, and it keeps its pod's network namespace alive).
func CleanupContainers(dir string) error {
	if _, err := os.Stat(PodmanRecord(dir)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := podman(ctx, "ps", "-a", "-q", "--filter", "label="+PodmanAgentLabel+"="+NamesFor(dir).hash)
	if err != nil {
		return err
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := podman(ctx, append([]string{"rm", "-f", "--time", "0"}, ids...)...); err != nil {
			return err
		}
	}
	return os.Remove(PodmanRecord(dir))
}

// startPodman starts container c from its image with podman, output appended
// to logPath, and returns it with the image's ID (the status's imageID).
func (w *podWorker) startPodman(ctx context.Context, c *ctr, proc ProcSpec, logPath string) (*Proc, string, error) {
	id, err := podman(ctx, "image", "inspect", "--format", "{{.Id}}", c.spec.Image)
	if err != nil {
		return nil, "", startError{"ErrImagePull", fmt.Errorf("image %s is not in podman's local storage: %w", c.spec.Image, err)}
	}
	// Bind-mount sources as the process path's mount(2) sees them: a subPath
	// into a configMap volume is a symlink into its current version.
	for i, m := range proc.Mounts {
		if real, err := filepath.EvalSymlinks(m.Source); err == nil {
			proc.Mounts[i].Source = real
		}
	}
	name := fmt.Sprintf("strom-%s-%s-%s-%d", w.a.names.hash, w.uid, c.spec.Name, c.instance+1)
	s := podmanSpecFor(w.pod, &c.spec, proc, name, podmanUlimits())
	s.Labels[PodmanAgentLabel] = w.a.names.hash
	args, err := s.RunArgs()
	if err != nil {
		return nil, "", startError{"CreateContainerConfigError", err}
	}
	if err := os.WriteFile(PodmanRecord(w.a.cfg.Dir), nil, 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command("podman", args...)
	p, err := startCmd(cmd, logPath)
	if err != nil {
		return nil, "", startError{"StartError", err}
	}
	p.podman = name
	return p, "sha256:" + strings.TrimSpace(id), nil
}

// stopPodman is Stop for a podman container: SIGTERM to the container's
// main process, SIGKILL after grace, and `podman run` must then return.
func (p *Proc) stopPodman(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+2*podmanExitWait)
	defer cancel()
	if _, err := podman(ctx, "kill", "--signal", "TERM", p.podman); err != nil {
		// Not running (yet): podman run's signal proxy passes it on.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_, _ = podman(ctx, "kill", "--signal", "KILL", p.podman)
	select {
	case <-p.done:
		return
	case <-time.After(podmanExitWait):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_, _ = podman(ctx, "rm", "-f", "--time", "0", p.podman)
	<-p.done
}

// podmanExec is an exec probe in a podman container: `podman exec` runs the
// command in its namespaces as its user.
func podmanExec(name string) ExecFunc {
	return func(ctx context.Context, argv []string) (int, string, error) {
		cmd := exec.CommandContext(ctx, "podman", append(append(append([]string{}, podmanGlobal...), "exec", name), argv...)...)
		return runExecProbe(ctx, cmd)
	}
}
