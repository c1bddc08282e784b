package node

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// brokerPod is shaped like the operator's broker pod: the distroless user,
// fsGroup, a read-only root without capabilities, the broker's command.
func brokerPod() (*v1.Pod, *v1.Container) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kafka", Name: "my-cluster-broker-0", UID: "u-1"},
		Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{
			RunAsUser: ptr.To(int64(65532)), RunAsGroup: ptr.To(int64(65532)), FSGroup: ptr.To(int64(65532)),
			SupplementalGroups: []int64{4000}, RunAsNonRoot: ptr.To(true),
		}},
	}
	c := v1.Container{
		Name: "broker", Image: "localhost/strom:dev",
		Command: []string{"strom-broker"}, Args: []string{"$(CONFIG)/server.properties"},
		SecurityContext: &v1.SecurityContext{
			ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}, Add: []v1.Capability{"NET_BIND_SERVICE"}},
		},
	}
	pod.Spec.Containers = []v1.Container{c}
	return pod, &pod.Spec.Containers[0]
}

func brokerProc(pod *v1.Pod, c *v1.Container) ProcSpec {
	uid, gid, groups, _ := identity(pod, c)
	return ProcSpec{
		Netns: "/run/netns/strom-abcd-u-1", Hostname: "my-cluster-broker-0", UID: uid, GID: gid, Groups: groups,
		Env: []string{"CONFIG=/etc/strom/runtime", "POD_NAME=my-cluster-broker-0"},
		Mounts: []Mount{
			{Source: "/state/pods/u-1/etc/hosts", Target: "/etc/hosts"},
			{Source: "/tmp/hostpath_pv/x", Target: "/var/lib/strom"},
			{Source: "/state/pods/u-1/volumes/runtime", Target: "/etc/strom/runtime", ReadOnly: true},
		},
	}
}

func TestPodmanRunArgs(t *testing.T) {
	pod, c := brokerPod()
	s := podmanSpecFor(pod, c, brokerProc(pod, c), "strom-abcd-u-1-broker-1", []string{"nofile=1024:1024"})
	s.Labels[PodmanAgentLabel] = "abcd"
	args, err := s.RunArgs()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"--runtime runc run --rm --pull=never --log-driver=passthrough --name strom-abcd-u-1-broker-1",
		"--label dev.strom.node-agent=abcd --label io.kubernetes.container.name=broker",
		"--label io.kubernetes.pod.name=my-cluster-broker-0 --label io.kubernetes.pod.namespace=kafka --label io.kubernetes.pod.uid=u-1",
		"--network ns:/run/netns/strom-abcd-u-1 --hostname my-cluster-broker-0",
		"--user 65532:65532 --group-add 4000 --group-add 65532",
		"--read-only --read-only-tmpfs=false --cap-drop ALL --cap-add NET_BIND_SERVICE --security-opt no-new-privileges",
		"--ulimit nofile=1024:1024",
		"--env CONFIG=/etc/strom/runtime --env POD_NAME=my-cluster-broker-0",
		"--mount type=bind,source=/state/pods/u-1/etc/hosts,destination=/etc/hosts",
		"--mount type=bind,source=/tmp/hostpath_pv/x,destination=/var/lib/strom",
		"--mount type=bind,source=/state/pods/u-1/volumes/runtime,destination=/etc/strom/runtime,ro=true",
		`--entrypoint ["strom-broker"] localhost/strom:dev /etc/strom/runtime/server.properties`,
	}, " ")
	if got := strings.Join(args, " "); got != want {
		t.Errorf("podman run arguments\n got: %s\nwant: %s", got, want)
	}
}

// Without a command the image's ENTRYPOINT runs with the args (Kubernetes'
// rule, which podman's own matches); nothing from the security context that
// the container did not ask for is added.
func TestPodmanRunArgsImageDefaults(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u"}, Spec: v1.PodSpec{HostNetwork: true}}
	c := &v1.Container{Name: "c", Image: "localhost/strom:dev", Args: []string{"pod-init", "--x"}, WorkingDir: "/work"}
	s := podmanSpecFor(pod, c, ProcSpec{Netns: "/proc/1/ns/net", Dir: "/work"}, "n", nil)
	args, err := s.RunArgs()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"--network host", "--workdir /work", "localhost/strom:dev pod-init --x"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q missing from %s", want, got)
		}
	}
	for _, unwanted := range []string{"--entrypoint", "--user", "--read-only", "--cap-drop", "--hostname", "no-new-privileges"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("%q in %s", unwanted, got)
		}
	}
}

func TestPodmanRunArgsRefused(t *testing.T) {
	pod, c := brokerPod()
	p := brokerProc(pod, c)
	p.UID = nil
	if _, err := podmanSpecFor(pod, c, p, "n", nil).RunArgs(); err == nil || !strings.Contains(err.Error(), "runAsGroup") {
		t.Errorf("runAsGroup without runAsUser: %v", err)
	}
	p = brokerProc(pod, c)
	p.Mounts = append(p.Mounts, Mount{Source: "/a,b", Target: "/x"})
	if _, err := podmanSpecFor(pod, c, p, "n", nil).RunArgs(); err == nil || !strings.Contains(err.Error(), "comma") {
		t.Errorf("comma in a mount source: %v", err)
	}
}

func TestLoadImagesRuntime(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "images.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"images": [{"repository": "localhost/strom", "runtime": "podman"}]}`)
	table, err := LoadImages(file, "/repo", "/target")
	if err != nil {
		t.Fatal(err)
	}
	img, err := table.Lookup("localhost/strom:dev")
	if err != nil || img.Runtime != RuntimePodman {
		t.Errorf("localhost/strom:dev: %+v, %v", img, err)
	}
	write(`{"images": [{"repository": "x", "runtime": "docker"}]}`)
	if _, err := LoadImages(file, "/repo", "/target"); err == nil || !strings.Contains(err.Error(), "unknown runtime") {
		t.Errorf("unknown runtime: %v", err)
	}
}

// A cleanup asks podman only when the agent recorded that it used it, so a
// machine without podman cleans up without it.
func TestCleanupContainersWithoutRecord(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no podman to find
	if err := CleanupContainers(t.TempDir()); err != nil {
		t.Errorf("no record: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(PodmanRecord(dir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CleanupContainers(dir); err == nil {
		t.Errorf("a record and no podman: no error")
	}
}

// The limits are the agent's, the process count capped where podman's own is.
func TestPodmanUlimits(t *testing.T) {
	got := podmanUlimits()
	if len(got) != 2 || !strings.HasPrefix(got[0], "nofile=") || !strings.HasPrefix(got[1], "nproc=") {
		t.Fatalf("ulimits %v", got)
	}
	for _, v := range strings.Split(strings.TrimPrefix(got[1], "nproc="), ":") {
		if n, err := strconv.Atoi(v); err != nil || n > podmanNprocCeiling || n < 0 {
			t.Errorf("nproc %s in %v", v, got)
		}
	}
}
