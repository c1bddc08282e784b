package scenarios

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// Images of the load pod and of the pod that stops it. strom-load is the fault
// tests' load as a program (e2e/cluster/src/bin/strom-load.rs): an acks=all
// idempotent producer and a consumer group member, and the history checker at
// the end. The sandbox maps the image to target/debug/strom-load; on kind,
// e2e/kind/run.sh builds it from e2e/kind/Dockerfile.load.
const (
	loadImage   = "ghcr.io/strom-dev/strom-e2e-load:dev"
	pythonImage = "python:3.13-slim"
)

// load is a strom-load pod running against my-cluster.
type load struct {
	ns, pod, ip string
}

// startLoad runs strom-load as a pod on topic NAME (RF 3, min.insync.replicas
// 2, three partitions) of the cluster a reaches, authenticated on a secured
// one, and waits until its producer has had writes acknowledged and its group
// member has consumed some. Extra arguments go to strom-load (e.g.
// "--producer-config", "KEY=VALUE").
func startLoad(t *testing.T, a access, name string, extra ...string) *load {
	t.Helper()
	args := append([]string{"run", name, "-n", a.ns, "--image=" + loadImage, "--restart=Never"}, a.podFlags(t, name)...)
	args = append(args, "--command", "--",
		"strom-load", "--bootstrap", a.bootstrap(), "--topic", name, "--group", name+"-group")
	args = append(args, a.loadFlags()...)
	kubectl(t, append(args, extra...)...)
	return waitLoad(t, a.ns, name)
}

// waitLoad waits until the strom-load pod NAME has had writes acknowledged and
// its group member has consumed some.
func waitLoad(t *testing.T, ns, name string) *load {
	t.Helper()
	l := &load{ns: ns, pod: name}
	kubetest.Eventually(t, 3*time.Minute, "load "+name+" acknowledged and consumed", func() (bool, string) {
		ip, err := jsonpath("-n", ns, "pod", name, "{.status.podIP}")
		if err != nil || ip == "" {
			return false, "no pod IP yet"
		}
		l.ip = ip
		logs, _ := run("", "kubectl", "logs", "-n", ns, name, "--tail=1")
		p := lastProgress(logs)
		return p.Acked > 0 && p.Consumed > 0, strings.TrimSpace(logs)
	})
	return l
}

// progress is one of strom-load's progress lines.
type progress struct {
	Sent, Acked, Failed, Consumed int
}

func lastProgress(logs string) progress {
	var p progress
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if rest, ok := strings.CutPrefix(lines[len(lines)-1], "strom-load: progress "); ok {
		_ = json.Unmarshal([]byte(rest), &p)
	}
	return p
}

// loadReport is what strom-load answers to /stop.
type loadReport struct {
	Error        string             `json:"error"`
	Sent         int                `json:"sent"`
	Acked        int                `json:"acked"`
	Failed       int                `json:"failed"`
	SendErrors   []string           `json:"send_errors"`
	Consumed     int                `json:"consumed"`
	RecordsRead  int                `json:"records_read"`
	Violations   []string           `json:"violations"`
	Skipped      map[string][]int64 `json:"skipped"`
	PollErrors   []string           `json:"poll_errors"`
	Transport    int                `json:"transport_notices"`
	CommitErrors []string           `json:"commit_errors"`
	Notes        []string           `json:"notes"`
}

// stop asks the load to finish (from a pod, so it works wherever pod IPs are
// not reachable from the test) and returns its report.
func (l *load) stop(t *testing.T) loadReport {
	t.Helper()
	fetch := "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=300).read().decode())"
	out := mustRunPod(t, l.ns, l.pod+"-stop", pythonImage, 6*time.Minute,
		"--command", "python3", "-c", fetch, fmt.Sprintf("http://%s:8080/stop", l.ip))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r loadReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("load report: %v\n%s", err, out)
	}
	return r
}

// requireNoErrors fails the test unless the load saw what Kafka promises for a
// controlled change: every acknowledged write there exactly once and in
// order, no send failed, the group skipped nothing, no consumer error. Failed
// offset commits during a coordinator move are allowed (the next commit
// carries the offsets) and logged, and so are librdkafka's "broker transport
// failure" notices, which it raises for every closed connection, also when an
// Apache Kafka broker shuts down cleanly (e2e/cluster/src/group.rs).
func (r loadReport) requireNoErrors(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %d sent, %d acked, %d failed; %d consumed, %d read back; %d violations; %d commit errors %v; %d transport notices; notes %v",
		what, r.Sent, r.Acked, r.Failed, r.Consumed, r.RecordsRead, len(r.Violations), len(r.CommitErrors), r.CommitErrors, r.Transport, r.Notes)
	switch {
	case r.Error != "":
		t.Fatalf("%s: the load could not be checked: %s", what, r.Error)
	case r.Acked == 0:
		t.Fatalf("%s: no write was acknowledged", what)
	case r.Failed > 0:
		t.Fatalf("%s: %d sends failed, e.g. %v", what, r.Failed, r.SendErrors)
	case len(r.Violations) > 0:
		t.Fatalf("%s: history violations: %v", what, r.Violations)
	case len(r.Skipped) > 0:
		t.Fatalf("%s: the group skipped offsets: %v", what, r.Skipped)
	case len(r.PollErrors) > 0:
		t.Fatalf("%s: the consumer saw errors: %v", what, r.PollErrors)
	}
}
