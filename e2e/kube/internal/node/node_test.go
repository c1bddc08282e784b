package node

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestRepository(t *testing.T) {
	for ref, want := range map[string]string{
		"busybox":                          "busybox",
		"busybox:1.36":                     "busybox",
		"docker.io/library/busybox:latest": "busybox",
		"ghcr.io/strom-dev/strom:0.1.0":    "ghcr.io/strom-dev/strom",
		"localhost:5000/strom":             "localhost:5000/strom",
		"localhost:5000/strom:dev":         "localhost:5000/strom",
		"apache/kafka@sha256:abcd":         "apache/kafka",
		"docker.io/apache/kafka:4.0.0":     "apache/kafka",
	} {
		if got := Repository(ref); got != want {
			t.Errorf("Repository(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestImageArgv(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"strom-broker", "kafka-topics"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := Image{Repository: "x", Entrypoint: []string{"strom-broker"}, Path: []string{dir}}
	cases := []struct {
		command, args []string
		want          string
	}{
		{nil, []string{"/etc/config"}, filepath.Join(dir, "strom-broker") + " /etc/config"},
		{[]string{"/usr/local/bin/strom-broker"}, nil, filepath.Join(dir, "strom-broker")},
		{[]string{"/opt/kafka/bin/kafka-topics.sh", "--list"}, nil, filepath.Join(dir, "kafka-topics") + " --list"},
		{[]string{"/bin/sh", "-c", "true"}, nil, "/bin/sh -c true"},
	}
	for _, c := range cases {
		argv, err := img.Argv(c.command, c.args)
		if err != nil {
			t.Errorf("%v %v: %v", c.command, c.args, err)
			continue
		}
		if got := strings.Join(argv, " "); got != c.want {
			t.Errorf("%v %v: %q, want %q", c.command, c.args, got, c.want)
		}
	}
	// busybox: no ENTRYPOINT, CMD ["sh"]; `kubectl run -- sh -c ...` sets args only.
	shell := Image{Repository: "busybox", Cmd: []string{"sh"}, Path: []string{"/usr/bin", "/bin"}}
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"sh", "-c", "true"}, "sh -c true"}, {nil, "sh"}} {
		argv, err := shell.Argv(nil, c.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(append([]string{filepath.Base(argv[0])}, argv[1:]...), " "); got != c.want {
			t.Errorf("busybox args %v: %v %v", c.args, argv, err)
		}
	}
	if _, err := img.Argv([]string{"no-such-tool"}, nil); err == nil {
		t.Error("an executable missing from the image resolved")
	}
	if _, err := (Image{Repository: "empty"}).Argv(nil, nil); err == nil {
		t.Error("no entrypoint and no command resolved")
	}
}

func TestLoadImagesAndLookup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "images.json")
	doc := `{"images": [{"repository": "ghcr.io/strom-dev/strom", "entrypoint": ["strom-operator"], "path": ["${TARGET}/debug", "${REPO}/bin"]}]}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	table, err := LoadImages(file, "/repo", "/target")
	if err != nil {
		t.Fatal(err)
	}
	img, err := table.Lookup("ghcr.io/strom-dev/strom:0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(img.Path, ",") != "/target/debug,/repo/bin" {
		t.Errorf("paths %v", img.Path)
	}
	_, err = table.Lookup("registry.invalid/ghost")
	if _, ok := err.(ErrUnknownImage); !ok || !strings.Contains(err.Error(), "images.json") {
		t.Errorf("unknown image: %v", err)
	}
}

func TestIPAM(t *testing.T) {
	p := NewIPAM(netip.MustParsePrefix("10.244.7.0/29")) // .1 gateway, .2-.6 pods, .7 broadcast
	alloc := func(owner string) string {
		t.Helper()
		a, err := p.Allocate(owner)
		if err != nil {
			t.Fatalf("allocate for %s: %v", owner, err)
		}
		return a.String()
	}
	if a := alloc("pod-a"); a != "10.244.7.2" {
		t.Fatalf("first address %s", a)
	}
	if again := alloc("pod-a"); again != "10.244.7.2" {
		t.Errorf("same owner got a second address %s", again)
	}
	// A freed address is not the next one handed out: a replacement pod gets a new one.
	p.Release("pod-a")
	if b := alloc("pod-b"); b != "10.244.7.3" {
		t.Errorf("after a release got %s, want the next address .3", b)
	}
	for i, want := range []string{"10.244.7.4", "10.244.7.5", "10.244.7.6", "10.244.7.2"} {
		if got := alloc(fmt.Sprintf("pod-%d", i)); got != want {
			t.Errorf("allocation %d: %s, want %s (round the range, skipping broadcast and gateway)", i, got, want)
		}
	}
	if a, err := p.Allocate("pod-full"); err == nil {
		t.Errorf("allocated %s from a full range", a)
	}
	p.Release("pod-1")
	if got := alloc("pod-again"); got != "10.244.7.5" {
		t.Errorf("the only free address is .5, got %s", got)
	}
	if _, err := NewIPAM(netip.MustParsePrefix("10.244.7.0/31")).Allocate("x"); err == nil {
		t.Error("a /31 has no pod address, yet one was allocated")
	}
}

func TestNames(t *testing.T) {
	n := NamesFor("/tmp/a/node")
	if len(n.Bridge) > 15 || len(n.HostVeth("0b6f9ad0-1234-5678-9abc-def012345678")) > 15 {
		t.Errorf("interface names over 15 characters: %s %s", n.Bridge, n.HostVeth("x"))
	}
	if NamesFor("/tmp/b/node").Bridge == n.Bridge || DefaultPodCIDR("/tmp/a/node") == netip.MustParsePrefix("10.244.0.0/24") {
		t.Error("names or CIDR do not depend on the directory")
	}
	if n.HostVeth("a") == n.HostVeth("b") {
		t.Error("two pods share a veth name")
	}
	if !DefaultPodCIDR("/x").IsValid() || Gateway(netip.MustParsePrefix("10.244.3.0/24")).String() != "10.244.3.1" {
		t.Error("gateway")
	}
}

func TestBackoffAndRestartPolicy(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	for _, c := range []struct {
		policy v1.RestartPolicy
		code   int32
		want   bool
	}{
		{v1.RestartPolicyAlways, 0, true}, {v1.RestartPolicyAlways, 1, true},
		{v1.RestartPolicyOnFailure, 0, false}, {v1.RestartPolicyOnFailure, 2, true},
		{v1.RestartPolicyNever, 0, false}, {v1.RestartPolicyNever, 1, false},
	} {
		if got := shouldRestart(c.policy, c.code); got != c.want {
			t.Errorf("shouldRestart(%s, %d) = %v", c.policy, c.code, got)
		}
	}
}

func TestProbeCounter(t *testing.T) {
	live := &ProbeCounter{Success: 1, Failure: 3, Result: true}
	for i, ok := range []bool{false, false, true, false, false} {
		if live.Observe(ok) {
			t.Fatalf("outcome %d flipped liveness before 3 failures in a row", i)
		}
	}
	if !live.Observe(false) || live.Result {
		t.Error("third failure in a row did not fail liveness")
	}
	ready := &ProbeCounter{Success: 2, Failure: 1}
	if ready.Observe(true) {
		t.Error("one success made ready with successThreshold 2")
	}
	if !ready.Observe(true) || !ready.Result {
		t.Error("two successes did not make ready")
	}
	if !ready.Observe(false) || ready.Result {
		t.Error("one failure did not make unready with failureThreshold 1")
	}
}

func running() v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
}
func exited(code int32) v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}}}
}
func creating() v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
}
func backingOff() v1.ContainerStatus {
	return v1.ContainerStatus{
		State:                v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}},
	}
}

func TestPhase(t *testing.T) {
	cases := []struct {
		name string
		v    PodView
		want v1.PodPhase
	}{
		{"init running", PodView{Inits: []v1.ContainerStatus{running()}, Ctrs: []v1.ContainerStatus{creating()}}, v1.PodPending},
		{"init failed, Never", PodView{RestartPolicy: v1.RestartPolicyNever, Inits: []v1.ContainerStatus{exited(1)}, Ctrs: []v1.ContainerStatus{creating()}}, v1.PodFailed},
		{"not all started", PodView{InitsDone: true, Ctrs: []v1.ContainerStatus{running(), creating()}}, v1.PodPending},
		{"running", PodView{InitsDone: true, Ctrs: []v1.ContainerStatus{running(), exited(0)}}, v1.PodRunning},
		{"crash loop", PodView{InitsDone: true, RestartPolicy: v1.RestartPolicyAlways, Ctrs: []v1.ContainerStatus{backingOff()}}, v1.PodRunning},
		{"done, Never", PodView{InitsDone: true, RestartPolicy: v1.RestartPolicyNever, Ctrs: []v1.ContainerStatus{exited(0), exited(0)}}, v1.PodSucceeded},
		{"one failed, Never", PodView{InitsDone: true, RestartPolicy: v1.RestartPolicyNever, Ctrs: []v1.ContainerStatus{exited(0), exited(2)}}, v1.PodFailed},
		{"done, OnFailure", PodView{InitsDone: true, RestartPolicy: v1.RestartPolicyOnFailure, Ctrs: []v1.ContainerStatus{exited(0)}}, v1.PodSucceeded},
	}
	for _, c := range cases {
		if got := Phase(c.v); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestBuildStatusKeepsSchedulerConditionAndTransitionTimes(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(then.Add(time.Hour))
	old := v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: then},
		{Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: then},
		{Type: v1.PodReady, Status: v1.ConditionFalse, LastTransitionTime: then},
	}}
	c := running()
	c.Ready = true
	st := BuildStatus(old, PodView{SandboxReady: true, InitsDone: true, Ctrs: []v1.ContainerStatus{c}, PodIP: "10.244.1.2", HostIP: "10.244.1.1"}, now)
	got := map[v1.PodConditionType]v1.PodCondition{}
	for _, c := range st.Conditions {
		got[c.Type] = c
	}
	if got[v1.PodScheduled].Status != v1.ConditionTrue {
		t.Error("PodScheduled dropped")
	}
	if !got[v1.PodInitialized].LastTransitionTime.Time.Equal(then.Time) {
		t.Error("unchanged Initialized got a new transition time")
	}
	if got[v1.PodReady].Status != v1.ConditionTrue || !got[v1.PodReady].LastTransitionTime.Time.Equal(now.Time) {
		t.Errorf("Ready: %+v", got[v1.PodReady])
	}
	if st.Phase != v1.PodRunning || st.PodIPs[0].IP != "10.244.1.2" || st.HostIPs[0].IP != "10.244.1.1" {
		t.Errorf("status %+v", st)
	}
	c.Ready = false
	st = BuildStatus(st, PodView{SandboxReady: true, InitsDone: true, Ctrs: []v1.ContainerStatus{c}}, now)
	for _, cond := range st.Conditions {
		if cond.Type == v1.ContainersReady && cond.Status != v1.ConditionFalse {
			t.Error("an unready container left ContainersReady true")
		}
	}
}

func TestEtcFiles(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"}, Spec: v1.PodSpec{
		Subdomain:   "web",
		HostAliases: []v1.HostAlias{{IP: "10.0.0.9", Hostnames: []string{"db"}}},
	}}
	hosts := HostsFile(pod, "10.244.1.5")
	if !strings.Contains(hosts, "10.244.1.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n") || !strings.Contains(hosts, "10.0.0.9\tdb") {
		t.Errorf("hosts:\n%s", hosts)
	}
	want := "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	if got := ResolvConf(pod, "10.96.0.10", "host"); got != want {
		t.Errorf("resolv.conf:\n%s", got)
	}
	pod.Spec.DNSPolicy = v1.DNSDefault
	if got := ResolvConf(pod, "10.96.0.10", "host"); got != "host" {
		t.Errorf("dnsPolicy Default: %q", got)
	}
	pod.Spec.DNSPolicy = v1.DNSNone
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}}
	if got := ResolvConf(pod, "10.96.0.10", "host"); got != "nameserver 1.1.1.1\noptions ndots:2\n" {
		t.Errorf("dnsPolicy None: %q", got)
	}
}

func TestIdentityAndExpansion(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), FSGroup: ptr.To(int64(2000)), RunAsNonRoot: ptr.To(true)}}}
	c := &v1.Container{SecurityContext: &v1.SecurityContext{RunAsUser: ptr.To(int64(0))}}
	uid, _, groups, nonRoot := identity(pod, c)
	if *uid != 0 || !nonRoot || len(groups) != 1 || groups[0] != 2000 {
		t.Errorf("identity: uid %d groups %v nonRoot %v", *uid, groups, nonRoot)
	}
	got := ExpandArgs([]string{"$(A)-$(B)", "$(MISSING)", "$$(A)", "$(id -u)"}, []string{"A=1", "B=two"})
	if strings.Join(got, " ") != "1-two $(MISSING) $(A) $(id -u)" {
		t.Errorf("expansion: %q", got)
	}
}

func TestTailLines(t *testing.T) {
	raw := []byte("a\nb\nc\n")
	for n, want := range map[int]string{0: "", 2: "b\nc\n", 5: "a\nb\nc\n"} {
		if got := string(tailLines(raw, n)); got != want {
			t.Errorf("tail %d: %q", n, got)
		}
	}
}

func TestHostPathsRemovesOnlyWhatItMadeAndOnlyEmpty(t *testing.T) {
	root := t.TempDir()
	src := t.TempDir()
	var h HostPaths
	if err := h.Ensure(src, filepath.Join(root, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := h.Ensure(src, filepath.Join(root, "keep", "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "keep", "data"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !os.IsNotExist(err) {
		t.Error("created empty tree left")
	}
	if _, err := os.Stat(filepath.Join(root, "keep", "data")); err != nil {
		t.Error("removed a file a container wrote")
	}
	if _, err := os.Stat(root); err != nil {
		t.Error("removed a directory that existed before")
	}
}

func TestIsProvisioned(t *testing.T) {
	for p, want := range map[string]bool{
		"/tmp/hostpath_pv/0b6f": true, "/tmp/hostpath_pv/": false, "/tmp/hostpath_pv/../etc": false, "/data": false,
	} {
		if IsProvisioned(p) != want {
			t.Errorf("IsProvisioned(%q) != %v", p, want)
		}
	}
}

func TestApplyFSGroup(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sub", "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ApplyFSGroup(root, 4242, false); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{"sub": 0o770 | os.ModeSetgid | os.ModeDir, "sub/f": 0o660} {
		st, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %s, want %s", path, st.Mode(), want)
		}
		if gid := st.Sys().(*syscall.Stat_t).Gid; gid != 4242 {
			t.Errorf("%s: group %d", path, gid)
		}
	}
}
