package scenarios

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// ownedKinds are the kinds searched for objects a KafkaCluster owns, directly
// or through an owner that it owns (StatefulSet -> Pods, ControllerRevisions;
// Service -> EndpointSlices).
const ownedKinds = "statefulsets,pods,controllerrevisions,services,endpointslices,configmaps,secrets," +
	"serviceaccounts,roles,rolebindings,poddisruptionbudgets,persistentvolumeclaims,networkpolicies"

// object is one owned object: "Kind/name" and its UID.
type object struct{ ref, uid string }

// owned lists every object in ns whose chain of owner references leads to uid.
func owned(t *testing.T, ns, uid string) []object {
	t.Helper()
	out := kubectl(t, "get", ownedKinds, "-n", ns, "-o", "json")
	var list struct {
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name            string `json:"name"`
				UID             string `json:"uid"`
				OwnerReferences []struct {
					UID string `json:"uid"`
				} `json:"ownerReferences"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("listing %s: %v", ownedKinds, err)
	}
	ours := map[string]bool{uid: true}
	for changed := true; changed; {
		changed = false
		for _, it := range list.Items {
			if ours[it.Metadata.UID] {
				continue
			}
			for _, o := range it.Metadata.OwnerReferences {
				if ours[o.UID] {
					ours[it.Metadata.UID] = true
					changed = true
				}
			}
		}
	}
	var objs []object
	for _, it := range list.Items {
		if it.Metadata.UID != uid && ours[it.Metadata.UID] {
			objs = append(objs, object{it.Kind + "/" + it.Metadata.Name, it.Metadata.UID})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].ref < objs[j].ref })
	return objs
}

// TestGarbageCollection: deleting a KafkaCluster removes every object it owns
// (found through owner references: StatefulSet, Services, ConfigMap, PDB,
// pods, ...) within a bounded time, through the real garbage collector.
func TestGarbageCollection(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s7-gc")
	kubectlIn(t, smallCluster("doomed", "persistent-claim"), "apply", "-n", ns, "-f", "-")
	waitReady(t, ns, "doomed", readyTimeout)
	uid := kubectl(t, "get", "kafkacluster", "doomed", "-n", ns, "-o", "jsonpath={.metadata.uid}")

	objs := owned(t, ns, uid)
	kinds := map[string]bool{}
	var refs []string
	for _, o := range objs {
		kinds[strings.Split(o.ref, "/")[0]] = true
		refs = append(refs, o.ref)
	}
	t.Logf("owned by kafkacluster/doomed: %s", strings.Join(refs, " "))
	for _, k := range []string{"StatefulSet", "Pod", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"} {
		if !kinds[k] {
			t.Errorf("no %s owned by the KafkaCluster", k)
		}
	}

	// left lists what still exists of the owned objects and the KafkaCluster.
	left := func() []string {
		out := kubectl(t, "get", ownedKinds, "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.uid} {.kind}/{.metadata.name}{"\n"}{end}`)
		var refs []string
		for _, o := range objs {
			if strings.Contains(out, o.uid) {
				refs = append(refs, o.ref)
			}
		}
		if _, err := jsonpath("-n", ns, "kafkacluster", "doomed", "{.metadata.uid}"); err == nil {
			refs = append(refs, "KafkaCluster/doomed")
		}
		return refs
	}
	// The check sees every object while they exist (so it can fail).
	if got := left(); len(got) != len(objs)+1 {
		t.Fatalf("before the delete the check sees %d of %d objects: %v", len(got), len(objs)+1, got)
	}

	start := time.Now()
	kubectl(t, "delete", "kafkacluster", "doomed", "-n", ns, "--wait=false")
	polls := 0
	kubetest.Eventually(t, 3*time.Minute, "every owned object gone", func() (bool, string) {
		polls++
		refs := left()
		if polls == 1 {
			t.Logf("right after the delete (%s), left: %s", time.Since(start).Round(10*time.Millisecond), strings.Join(refs, " "))
		}
		return len(refs) == 0, "left: " + strings.Join(refs, " ")
	})
	t.Logf("%d owned objects gone %s after the delete (%d polls)", len(objs), time.Since(start).Round(100*time.Millisecond), polls)
	// What is not owned stays, as on any StatefulSet (retention policy Retain):
	// the brokers' claims are the user's data.
	t.Logf("left in %s: %s", ns, kubectl(t, "get", "pvc", "-n", ns, "-o", "name"))
}
