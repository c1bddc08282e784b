package scenarios

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"strom/e2e/kube/internal/kubetest"
)

// placement is where the replicas of every partition are, as Metadata says.
type placement struct {
	Brokers []struct {
		ID int `json:"id"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Partitions []struct {
			Partition int `json:"partition"`
			Replicas  []struct {
				ID int `json:"id"`
			} `json:"replicas"`
		} `json:"partitions"`
	} `json:"topics"`
}

// metadataAt asks the cluster for its metadata with `kcat -L -J` in a pod
// (pods POD-1, POD-2, ...). kcat gives up when its one bootstrap connection
// fails, as it does when the Service still routes to a broker pod that is
// going away; a client retries then, and so does this.
func metadataAt(t *testing.T, a access, pod string) placement {
	t.Helper()
	var p placement
	attempt := 0
	kubetest.Eventually(t, 3*time.Minute, "the cluster's metadata from kcat -L -J", func() (bool, string) {
		attempt++
		out, ok := a.kcat(t, fmt.Sprintf("%s-%d", pod, attempt), "-L", "-J")
		if !ok {
			return false, out
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &p); err != nil {
			return false, fmt.Sprintf("kcat -L -J: %v\n%s", err, out)
		}
		return true, ""
	})
	return p
}

// load counts the replicas and the preferred leaderships (first replica) per broker.
func (p placement) load() (replicas, preferred map[int]int) {
	replicas, preferred = map[int]int{}, map[int]int{}
	for _, topic := range p.Topics {
		for _, part := range topic.Partitions {
			for i, r := range part.Replicas {
				replicas[r.ID]++
				if i == 0 {
					preferred[r.ID]++
				}
			}
		}
	}
	return replicas, preferred
}

// brokerIDs are the brokers registered in the cluster metadata.
func (p placement) brokerIDs() []int {
	var ids []int
	for _, b := range p.Brokers {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

// scaleTo patches spec.replicas.
func scaleTo(t *testing.T, ns string, replicas int) {
	t.Helper()
	kubectl(t, "patch", "-n", ns, "kafkacluster", "my-cluster", "--type=merge", "-p",
		fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
}

// stsReplicas is the StatefulSet's spec.replicas as the operator set it.
func stsReplicas(ns string) string {
	out, _ := jsonpath("-n", ns, "statefulset", "my-cluster-broker", "{.spec.replicas}")
	return out
}

// TestScaling (issue 14, scenario 4; issue 16 on a secured cluster): the
// secured example, under an acks=all load and a consumer group (SCRAM over
// TLS) that must see no error and lose nothing:
//   - 3 → 5: the new brokers join, then the operator moves partitions onto
//     them, throttled, until replicas and preferred leaders are spread evenly;
//   - 5 → 3 with a topic of replication factor 5: refused with a Warning
//     condition naming the topic, and nothing moves or goes;
//   - without it, 5 → 3: every replica leaves brokers 3 and 4 before the
//     StatefulSet shrinks, and the two are unregistered afterwards.
func TestScaling(t *testing.T) {
	t.Parallel() // after the serial scenarios, beside the others (own namespace)
	ensureOperator(t)
	ns := namespace(t, "s12-scale")
	secured := deploySecuredExample(t, ns)
	load := startLoad(t, secured, "load-scale")

	scaleTo(t, ns, 5)
	phases := map[string]bool{}
	var throttled string
	took := kubetest.Eventually(t, 12*time.Minute, "five brokers Ready and the rebalance done", func() (bool, string) {
		scaling, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.scaling.phase}|{.status.scaling.throttledTopics}|{.status.scaling.movesDone}/{.status.scaling.movesTotal}")
		parts := strings.SplitN(scaling, "|", 3)
		if parts[0] != "" {
			phases[parts[0]] = true
		}
		if len(parts) > 1 && parts[1] != "" && parts[1] != "[]" {
			throttled = parts[1]
		}
		ready, _, _ := condition(ns, "my-cluster", "Ready")
		replicas, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.readyReplicas}")
		return scaling == "||/" && ready == "True" && replicas == "5",
			fmt.Sprintf("scaling %q; Ready %s; readyReplicas %s", scaling, ready, replicas)
	})
	t.Logf("3 → 5 in %s; phases seen %v; throttled topics %s", took.Round(time.Second), phases, throttled)
	if !phases["Moving"] {
		t.Errorf("the scale-up never moved partitions (phases %v)", phases)
	}
	if throttled == "" {
		t.Errorf("no topic was throttled while partitions moved")
	}
	spread := metadataAt(t, secured, "metadata-5")
	replicas, preferred := spread.load()
	total := 0
	for _, n := range replicas {
		total += n
	}
	t.Logf("replicas per broker %v, preferred leaders per broker %v", replicas, preferred)
	for b := 0; b < 5; b++ {
		// Even within one replica of the mean; a planner that left the new
		// brokers light (or empty) fails here.
		if mean := float64(total) / 5; float64(replicas[b]) < mean-1 || float64(replicas[b]) > mean+1 {
			t.Errorf("broker %d holds %d replicas; an even spread of %d over 5 is %.1f each", b, replicas[b], total, mean)
		}
		if preferred[b] == 0 {
			t.Errorf("broker %d is the preferred leader of no partition", b)
		}
	}

	// Five replicas cannot live on three brokers: the scale-down is refused.
	secured.kafkaTool(t, "create-wide", "kafka-topics", "--create", "--topic", "wide",
		"--partitions", "1", "--replication-factor", "5")
	scaleTo(t, ns, 3)
	kubetest.Eventually(t, 3*time.Minute, "the scale-down refused with a Warning naming topic wide", func() (bool, string) {
		status, reason, message := condition(ns, "my-cluster", "Warning")
		phase, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.scaling.phase} {.status.scaling.blockedTopics}")
		return status == "True" && strings.Contains(reason, "ScaleDownRefused") && strings.Contains(message, "wide") &&
				strings.HasPrefix(phase, "Refused"),
			fmt.Sprintf("Warning %s %s: %s; scaling %s", status, reason, message, phase)
	})
	if n := stsReplicas(ns); n != "5" {
		t.Fatalf("the StatefulSet has %s replicas while the scale-down is refused", n)
	}
	if moved := metadataAt(t, secured, "metadata-refused"); !onlyAdded(spread, moved, "wide") {
		t.Errorf("partitions moved although the scale-down was refused:\nbefore %v\nafter  %v", spread.Topics, moved.Topics)
	}
	if events := clusterEvents(t, ns); !strings.Contains(events, "Warning ScaleDownRefused") {
		t.Errorf("no Warning Event for the refused scale-down:\n%s", events)
	}

	// Without it the scale-down goes ahead: drained first, then shrunk.
	secured.kafkaTool(t, "delete-wide", "kafka-topics", "--delete", "--topic", "wide")
	sawDraining := false
	kubetest.Eventually(t, 12*time.Minute, "the StatefulSet shrunk to 3", func() (bool, string) {
		phase, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.scaling.phase}")
		sawDraining = sawDraining || phase == "Draining"
		n := stsReplicas(ns)
		return n == "3", "StatefulSet replicas " + n + "; scaling phase " + phase
	})
	// Replicas only ever move off a broker before it goes, so the metadata
	// right after the shrink shows whether any were left behind.
	drained := metadataAt(t, secured, "metadata-shrunk")
	if left, _ := drained.load(); left[3] > 0 || left[4] > 0 {
		t.Errorf("the StatefulSet shrank while brokers 3 and 4 still held %d and %d replicas", left[3], left[4])
	}
	if !sawDraining {
		t.Errorf("the scale-down never reported Draining")
	}
	took = kubetest.Eventually(t, 6*time.Minute, "three brokers, 3 and 4 unregistered, the cluster Ready", func() (bool, string) {
		ready, _, _ := condition(ns, "my-cluster", "Ready")
		scaling, _ := jsonpath("-n", ns, "kafkacluster", "my-cluster", "{.status.scaling}")
		pods := brokerPods(t, ns)
		return ready == "True" && scaling == "" && len(pods) == 3, fmt.Sprintf("Ready %s; scaling %s; pods %v", ready, scaling, pods)
	})
	t.Logf("5 → 3 finished %s after the shrink", took.Round(time.Second))
	kubetest.Eventually(t, 2*time.Minute, "brokers 3 and 4 gone from the metadata", func() (bool, string) {
		ids := metadataAt(t, secured, fmt.Sprintf("metadata-ids-%d", time.Now().UnixNano())).brokerIDs()
		return slices.Equal(ids, []int{0, 1, 2}), fmt.Sprint(ids)
	})
	load.stop(t).requireNoErrors(t, "load while the cluster scaled 3 → 5 → 3")
}

// onlyAdded is true when after equals before plus topic added.
func onlyAdded(before, after placement, added string) bool {
	var kept placement
	for _, topic := range after.Topics {
		if topic.Topic != added {
			kept.Topics = append(kept.Topics, topic)
		}
	}
	return fmt.Sprint(sortedTopics(kept)) == fmt.Sprint(sortedTopics(before))
}

func sortedTopics(p placement) []string {
	var out []string
	for _, topic := range p.Topics {
		out = append(out, fmt.Sprint(topic))
	}
	slices.Sort(out)
	return out
}
