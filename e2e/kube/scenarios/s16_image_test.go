package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// The environment TestImageCluster reads.
const (
	// The project's image in podman's local storage, e.g. localhost/strom:dev
	// (e2e/image builds it); unset: the scenario is skipped.
	imageEnv = "STROM_KUBE_IMAGE"
	// Optional: a file the image build writes its exit status to ("0": built).
	// The scenario waits for it (the build may still be running) and fails if
	// the build failed.
	imageReadyEnv = "STROM_KUBE_IMAGE_READY"
	// How long the scenario waits for that file.
	imageReadyTimeout = 40 * time.Minute
	// The broker's user in the image (distroless nonroot) and the pod spec.
	nonrootID = "65532"
)

// TestImageCluster (issue 17): the example cluster with spec.image the
// project's real image. The sandbox's node agent runs that image with podman
// (e2e/kube/images.json, "runtime": "podman"), so the image and the pod spec
// the operator renders (user, read-only root, no capabilities, mounts,
// probes) are tested together: pod-init and the brokers run from the image,
// the operator's probes pass against the containers, the broker process runs
// as 65532 on a read-only root in the pod's network namespace, a broker whose
// process is killed comes back (exit code 137 in its status), records go
// through the bootstrap Service with acks=all, and deleting the cluster
// removes the containers. Needs podman and the sandbox's node agent on this
// machine.
func TestImageCluster(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	image := os.Getenv(imageEnv)
	if image == "" {
		t.Skipf("%s is unset: no podman image of the project to run (e2e/image builds one, e.g. localhost/strom:dev)", imageEnv)
	}
	waitImageBuild(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("%s=%s but podman is not on PATH: the node agent runs that image with podman on this machine", imageEnv, image)
	}
	imageID := "sha256:" + strings.TrimSpace(podman(t, "image", "inspect", "--format", "{{.Id}}", image))
	ensureOperator(t)
	ns := namespace(t, "s16-image")

	cluster := kubectl(t, "patch", "--local", "-f", path(example), "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"image":%q}}`, image), "-o", "yaml")
	kubectlIn(t, cluster, "apply", "-n", ns, "-f", "-")
	took := waitReady(t, ns, "my-cluster", readyTimeout)
	t.Logf("three brokers from %s Ready after %s", image, took.Round(time.Second))

	pods := brokerPods(t, ns)
	if len(pods) != 3 {
		t.Fatalf("want 3 broker pods, got %v", pods)
	}
	for pod, uid := range pods {
		name := checkImagePod(t, ns, pod, imageID, 0)
		checkContainerProcess(t, pod, uid, name)
	}

	// Records with acks=all through the bootstrap Service, from a kcat pod
	// run as a process beside the podman-run brokers.
	out := mustRunPod(t, ns, "kcat-produce", kcatImage, 3*time.Minute, "--command", "sh", "-c",
		kcatRoundTrip(ns, "image-topic", 1, 200))
	if !strings.Contains(out, "produced 200") {
		t.Fatalf("kcat did not produce 200 records:\n%s", out)
	}

	// A broker whose process dies: `podman run` reports the container's exit
	// (SIGKILL: 137), the agent restarts it from the image, it is Ready again.
	victim := "my-cluster-broker-0"
	pid, _ := containerPid(t, pods[victim], "broker")
	signal(t, pid, syscall.SIGKILL)
	// The agent's back-off (10 s), then the startup probe's budget (60 x 5 s:
	// log recovery after an unclean stop).
	took = kubetest.Eventually(t, readyTimeout, victim+" restarted after exit 137", func() (bool, string) {
		out, err := jsonpath("-n", ns, "pod", victim,
			`{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].ready}`)
		if err != nil {
			return false, err.Error()
		}
		return out == "1 137 true", "restartCount lastExitCode ready: " + out
	})
	t.Logf("%s Ready again %s after its process was killed", victim, took.Round(time.Second))
	name := checkImagePod(t, ns, victim, imageID, 1)
	checkContainerProcess(t, victim, pods[victim], name)
	waitReady(t, ns, "my-cluster", readyTimeout)

	wantRecords(t, kcatConsume(t, ns, "kcat-consume", "image-topic"), 1, 200)

	// Deleting the cluster stops the brokers (SIGTERM through podman, well
	// within their 120 s grace period) and removes their containers.
	start := time.Now()
	kubectl(t, "delete", "kafkacluster", "my-cluster", "-n", ns, "--wait", "--timeout=2m")
	kubetest.Eventually(t, 100*time.Second, "the broker pods gone", func() (bool, string) {
		left := brokerPods(t, ns)
		return len(left) == 0, fmt.Sprintf("left: %v", left)
	})
	t.Logf("cluster deleted, broker pods gone after %s", time.Since(start).Round(time.Second))
	if left := strings.TrimSpace(podman(t, "ps", "-a", "--filter", "label=io.kubernetes.pod.namespace="+ns, "--format", "{{.Names}}")); left != "" {
		t.Fatalf("podman containers of namespace %s left after the cluster was deleted:\n%s", ns, left)
	}
}

// waitImageBuild waits for the image build's status file, if one is named, and
// fails the test unless the build succeeded.
func waitImageBuild(t *testing.T) {
	t.Helper()
	ready := os.Getenv(imageReadyEnv)
	if ready == "" {
		return
	}
	kubetest.Eventually(t, imageReadyTimeout, "the image build's status in "+ready, func() (bool, string) {
		_, err := os.Stat(ready)
		return err == nil, fmt.Sprint(err)
	})
	raw, err := os.ReadFile(ready)
	if err != nil {
		t.Fatal(err)
	}
	status := strings.TrimSpace(string(raw))
	switch {
	case status == "0":
	case strings.HasPrefix(status, "skipped:"):
		// The image suite could not run podman here and says why; the test command
		// lists it as skipped, and so is this.
		t.Skipf("the image suite was %s", status)
	default:
		t.Fatalf("the image build failed (%s says %q): no image to run", ready, status)
	}
}

// podman runs podman (as the node agent does) and fails the test when it fails.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", append([]string{"--runtime", "runc"}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// checkImagePod checks that a broker pod is Running and Ready, that its
// pod-init and broker containers ran from the image (podman containers, the
// image's ID) and that pod-init completed, and returns the broker's podman
// container name.
func checkImagePod(t *testing.T, ns, pod, imageID string, restarts int) string {
	t.Helper()
	obj := getJSON(t, "pod", "-n", ns, pod)
	if phase := field(obj, "status", "phase"); phase != "Running" {
		t.Fatalf("pod %s: phase %v", pod, phase)
	}
	ready := false
	for _, c := range asList(field(obj, "status", "conditions")) {
		if field(c, "type") == "Ready" {
			ready = field(c, "status") == "True"
		}
	}
	if !ready {
		t.Fatalf("pod %s is not Ready: %v", pod, field(obj, "status", "conditions"))
	}
	inits := asList(field(obj, "status", "initContainerStatuses"))
	ctrs := asList(field(obj, "status", "containerStatuses"))
	if len(inits) != 1 || len(ctrs) != 1 {
		t.Fatalf("pod %s: want one init container and one container, got %v and %v", pod, inits, ctrs)
	}
	init, broker := inits[0], ctrs[0]
	if field(init, "name") != "pod-init" || field(init, "state", "terminated", "exitCode") != float64(0) {
		t.Errorf("pod %s: pod-init did not complete: %v", pod, field(init, "state"))
	}
	if n := field(broker, "restartCount"); n != float64(restarts) {
		t.Errorf("pod %s: broker restartCount %v, want %d", pod, n, restarts)
	}
	for _, c := range []any{init, broker} {
		id, _ := field(c, "containerID").(string)
		if !strings.HasPrefix(id, "podman://") || field(c, "imageID") != imageID {
			t.Errorf("pod %s: container %v did not run from the image with podman: containerID %q, imageID %v (want podman://..., %s)",
				pod, field(c, "name"), id, field(c, "imageID"), imageID)
		}
	}
	id, _ := field(broker, "containerID").(string)
	return strings.TrimPrefix(id, "podman://")
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// containerPid finds the running podman container of a pod's container by its
// CRI labels and returns its main process and its name.
func containerPid(t *testing.T, uid, container string) (int, string) {
	t.Helper()
	out := strings.Fields(podman(t, "ps", "--filter", "label=io.kubernetes.pod.uid="+uid,
		"--filter", "label=io.kubernetes.container.name="+container, "--format", "{{.Names}}"))
	if len(out) != 1 {
		t.Fatalf("podman ps lists %d running containers for container %s of pod %s: %v", len(out), container, uid, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.Pid}}", out[0])))
	if err != nil || pid <= 0 {
		t.Fatalf("podman container %s: no pid (%v)", out[0], err)
	}
	return pid, out[0]
}

// checkContainerProcess checks, on this machine, that the broker of pod runs
// in podman container want as the image's and the spec's user (65532, with
// the fsGroup), without capabilities, on a read-only root holding the
// image's files, in the pod's network namespace.
func checkContainerProcess(t *testing.T, pod, uid, want string) {
	t.Helper()
	pid, name := containerPid(t, uid, "broker")
	if name != want {
		t.Errorf("pod %s: podman runs container %s, the status names %s", pod, name, want)
	}
	proc := func(file string) string {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), file))
		if err != nil {
			t.Fatalf("pod %s: %v", pod, err)
		}
		return string(raw)
	}
	if cmd := strings.Split(proc("cmdline"), "\x00")[0]; filepath.Base(cmd) != "strom-broker" {
		t.Errorf("pod %s: container %s runs %q, not strom-broker", pod, name, cmd)
	}
	status := map[string][]string{}
	for _, line := range strings.Split(proc("status"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.Fields(v)
		}
	}
	for _, k := range []string{"Uid", "Gid"} {
		if strings.Join(status[k], " ") != strings.Repeat(nonrootID+" ", 3)+nonrootID {
			t.Errorf("pod %s: broker %s %v, want %s throughout", pod, k, status[k], nonrootID)
		}
	}
	if !slices.Contains(status["Groups"], nonrootID) {
		t.Errorf("pod %s: broker's groups %v lack the fsGroup %s", pod, status["Groups"], nonrootID)
	}
	if eff := strings.Join(status["CapEff"], ""); eff != "0000000000000000" {
		t.Errorf("pod %s: broker has capabilities %s (the spec drops ALL)", pod, eff)
	}
	root := ""
	for _, line := range strings.Split(proc("mountinfo"), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			root = f[5]
		}
	}
	if !slices.Contains(strings.Split(root, ","), "ro") {
		t.Errorf("pod %s: broker's root is mounted %q, not read-only", pod, root)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "root", "usr/local/bin/strom-operator")); err != nil {
		t.Errorf("pod %s: the broker's root is not the image's: %v", pod, err)
	}
	if netns, err := run("", "ip", "netns", "identify", strconv.Itoa(pid)); err != nil || !strings.HasSuffix(strings.TrimSpace(netns), "-"+uid) {
		t.Errorf("pod %s: broker not in the pod's network namespace: %q %v", pod, netns, err)
	}
}
