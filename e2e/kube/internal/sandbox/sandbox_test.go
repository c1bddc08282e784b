package sandbox

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseStatTakesFieldsAfterTheCommandName(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift fields.
	stat := "4242 (kube apiserver) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 987654 1000 10 18446744073709551615"
	state, start, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if state != "S" || start != 987654 {
		t.Fatalf("got state %q start %d, want S 987654", state, start)
	}
	if _, _, err := parseStat("4242 (short) S 1"); err == nil {
		t.Fatal("a truncated stat line parsed")
	}
}

func TestFirstServiceIPIsTheKubernetesServiceAddress(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.96.0.0/16":  "10.96.0.1",
		"10.96.5.7/16":  "10.96.0.1", // not masked on input
		"fd00:10::/108": "fd00:10::1",
	} {
		got := FirstServiceIP(netip.MustParsePrefix(cidr)).String()
		if got != want {
			t.Errorf("%s: got %s, want %s", cidr, got, want)
		}
	}
}

func testCluster() Cluster {
	return Cluster{
		Layout:      Layout{Dir: "/state"},
		BinDir:      "/bin",
		Ports:       Ports{EtcdClient: 1001, EtcdPeer: 1002, APIServer: 1003, ControllerManager: 1004, Scheduler: 1005},
		ServiceCIDR: netip.MustParsePrefix(DefaultServiceCIDR),
	}
}

func TestComponentsStartInDependencyOrder(t *testing.T) {
	var names []string
	for _, c := range testCluster().Components() {
		names = append(names, c.Name)
	}
	want := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent", "kube-proxy"}
	if !slices.Equal(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
}

func TestAPIServerRunsLikeARealClusterOnTheNodeAddress(t *testing.T) {
	c := testCluster()
	api := c.Components()[1]
	node := c.NodeIP().String() // the pod bridge's address: pods reach it
	for _, flag := range []string{
		"--etcd-servers=http://127.0.0.1:1001",
		"--secure-port=1003",
		"--bind-address=" + node,
		"--advertise-address=" + node,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-signing-key-file=/state/pki/sa.key",
		"--client-ca-file=/state/pki/ca.crt",
	} {
		if !slices.Contains(api.Args, flag) {
			t.Errorf("kube-apiserver lacks %s", flag)
		}
	}
	if api.Health != "https://"+node+":1003/readyz" {
		t.Errorf("health %s", api.Health)
	}
	// Admission stays at the defaults: plugins may be added, never disabled.
	for _, a := range api.Args {
		if strings.HasPrefix(a, "--disable-admission-plugins") || strings.HasPrefix(a, "--admission-control=") {
			t.Errorf("admission narrowed by %s", a)
		}
	}
}

func TestControllerManagerRunsEveryDefaultControllerWithItsOwnIdentity(t *testing.T) {
	kcm := testCluster().Components()[2]
	for _, flag := range []string{
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--kubeconfig=/state/controller-manager.kubeconfig",
		"--service-account-private-key-file=/state/pki/sa.key",
		"--root-ca-file=/state/pki/ca.crt",
		"--secure-port=1004",
	} {
		if !slices.Contains(kcm.Args, flag) {
			t.Errorf("kube-controller-manager lacks %s", flag)
		}
	}
}

func TestRemoveDirRefusesADirectoryUpDidNotMake(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := removeDir(Layout{Dir: dir}); err == nil {
		t.Fatal("removed a directory without the sandbox marker")
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Fatal("file gone:", err)
	}
	l := Layout{Dir: filepath.Join(dir, "sandbox")}
	if err := os.MkdirAll(l.Logs(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Marker(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, err := removeDir(l); err != nil || !removed {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Fatalf("sandbox dir still there: %v", err)
	}
}

func TestCredentialsMakeKubeconfigsForEveryIdentity(t *testing.T) {
	c := testCluster()
	c.Layout = Layout{Dir: t.TempDir()}
	if err := WriteCredentials(c); err != nil {
		t.Fatal(err)
	}
	for _, id := range Identities {
		raw, err := os.ReadFile(c.Layout.Kubeconfig(id.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "server: https://"+c.NodeIP().String()+":1003") {
			t.Errorf("%s kubeconfig does not point at the API server:\n%s", id.Name, raw)
		}
	}
	if _, err := HealthClient(c.Layout); err != nil {
		t.Fatal("health client from the written PKI:", err)
	}
}
