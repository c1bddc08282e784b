package scenarios

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// TestLeaderElection: with the chart's two operator replicas only the Lease
// holder reconciles, the other logs that it waits and reconciles nothing;
// deleting the holder's pod hands the Lease over within its duration, and the
// new holder reconciles.
func TestLeaderElection(t *testing.T) {
	ensureOperator(t)
	ns := namespace(t, "s6-leader")
	if n, _ := jsonpath("-n", operatorNamespace, "deployment", operatorName, "{.spec.replicas}"); n != "2" {
		t.Fatalf("operator Deployment has %s replicas, want the chart's default 2", n)
	}
	kubetest.Eventually(t, 3*time.Minute, "two operator pods running", func() (bool, string) {
		pods := operatorPods(t)
		return len(pods) == 2, fmt.Sprint(pods)
	})
	holder := waitLeader(t, 2*time.Minute)
	var standby string
	for _, p := range operatorPods(t) {
		if p != holder {
			standby = p
		}
	}

	kubectlIn(t, smallCluster("lease-probe", "ephemeral"), "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "lease-probe", readyTimeout)
	if logs := operatorLogs(t, holder); !strings.Contains(logs, "lease-probe") {
		t.Errorf("the holder %s logged nothing about cluster lease-probe", holder)
	}
	standbyLogs := operatorLogs(t, standby)
	if !strings.Contains(standbyLogs, "waiting for the leader lease") {
		t.Errorf("the standby %s does not say it waits for the lease:\n%s", standby, tail(standbyLogs, 20))
	}
	if strings.Contains(standbyLogs, "acquired the leader lease") || strings.Contains(standbyLogs, "lease-probe") {
		t.Errorf("the standby %s acquired the lease or worked on cluster lease-probe:\n%s", standby, tail(standbyLogs, 20))
	}

	duration, err := strconv.Atoi(kubectl(t, "-n", operatorNamespace, "get", "lease", operatorName, "-o", "jsonpath={.spec.leaseDurationSeconds}"))
	if err != nil {
		t.Fatalf("lease duration: %v", err)
	}
	start := time.Now()
	kubectl(t, "-n", operatorNamespace, "delete", "pod", holder, "--wait=false")
	// The standby normally wins; the Deployment's replacement pod may too.
	var next string
	kubetest.Eventually(t, time.Duration(duration)*time.Second+5*time.Second, "another operator pod takes the Lease", func() (bool, string) {
		next = leaseHolder()
		return next != "" && next != holder, "holder " + next
	})
	t.Logf("Lease handed from %s to %s in %s (lease duration %ds)", holder, next, time.Since(start).Round(100*time.Millisecond), duration)

	// The new holder reconciles: a spec change is observed.
	kubectl(t, "patch", "-n", ns, "kafkacluster", "lease-probe", "--type=merge", "-p", `{"spec":{"config":{"log.retention.hours":100}}}`)
	_, gen := versions(t, ns, "kafkacluster/lease-probe")
	kubetest.Eventually(t, 2*time.Minute, "the new holder observes the change", func() (bool, string) {
		got, _ := jsonpath("-n", ns, "kafkacluster", "lease-probe", "{.status.observedGeneration}")
		return got == fmt.Sprint(gen), "observedGeneration " + got
	})
	if logs := operatorLogs(t, next); !strings.Contains(logs, "acquired the leader lease") || !strings.Contains(logs, "lease-probe") {
		t.Errorf("the new holder %s did not log acquiring the lease and reconciling lease-probe:\n%s", next, tail(logs, 20))
	}
	// The Deployment replaces the deleted pod; the suite after this needs both.
	kubectl(t, "-n", operatorNamespace, "rollout", "status", "deployment/"+operatorName, "--timeout=3m")
}
