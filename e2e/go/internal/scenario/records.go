// Package scenario is the client compatibility scenario of e2e/clients/CONTRACT.md,
// written once for the Go client libraries (compat_scenario.py is the Python twin).
//
// Each program under cmd/ wraps one library in an Adapter and calls Main, which
// runs the phase the driver asked for, decides each capability and prints the
// `COMPAT {json}` line last.
package scenario

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The numbers of the contract; the driver starts the broker with num.partitions=6.
const (
	Partitions     = 6
	keys           = 60
	keyedCount     = 600
	idemCount      = 100
	perCodec       = 10
	laterCount     = 300
	SessionTimeout = 10 * time.Second // long enough to restart a static member, short enough to wait out
	// HeartbeatInterval lets members notice a rebalance within a second.
	HeartbeatInterval = time.Second
	// CallTimeout bounds one client call (produce, admin request, commit, close...).
	CallTimeout    = 30 * time.Second
	groupTimeout   = 45 * time.Second // for a group to form or re-form
	leaveTimeout   = SessionTimeout * 8 / 10
	consumeTimeout = 45 * time.Second
	phaseBudget    = 160 * time.Second // the driver kills a phase at 180 s
	pollInterval   = 100 * time.Millisecond
)

// Codecs are the compression codecs the contract asks for, in column order.
var Codecs = []string{"gzip", "snappy", "lz4", "zstd"}

// Message is one record to produce.
type Message struct {
	Key, Value []byte
}

// Record is one record as the broker acknowledged or a consumer received it.
type Record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// CheckFailed is the broker (or the client against it) not doing what Kafka does.
type CheckFailed struct{ msg string }

func (e *CheckFailed) Error() string { return e.msg }

// Failf makes a CheckFailed.
func Failf(format string, args ...any) error { return &CheckFailed{fmt.Sprintf(format, args...)} }

// keyed builds keys key-0..key-59 cycling, values "<prefix>:<seq>" (+ padding to compress).
func keyed(prefix string, count, pad int) []Message {
	filler := strings.Repeat(" compressible", pad)
	out := make([]Message, count)
	for i := range out {
		out[i] = Message{
			Key:   fmt.Appendf(nil, "key-%d", i%keys),
			Value: fmt.Appendf(nil, "%s:%d%s", prefix, i, filler),
		}
	}
	return out
}

type position struct {
	partition int32
	offset    int64
}

func byPosition(records []Record) map[position]string {
	out := make(map[position]string, len(records))
	for _, r := range records {
		out[position{r.Partition, r.Offset}] = string(r.Value)
	}
	return out
}

// compare: got must hold every (partition, offset) of want exactly once, with its value.
func compare(what string, got []Record, want map[position]string) error {
	seen := map[position]int{}
	var wrong []string
	for _, r := range got {
		p := position{r.Partition, r.Offset}
		seen[p]++
		if v, ok := want[p]; ok && v != string(r.Value) {
			wrong = append(wrong, fmt.Sprintf("(%d, %d, %.40q)", r.Partition, r.Offset, r.Value))
		}
	}
	var missing, dups, extra []position
	for p := range want {
		if seen[p] == 0 {
			missing = append(missing, p)
		}
	}
	for p, n := range seen {
		if n > 1 {
			dups = append(dups, p)
		}
		if _, ok := want[p]; !ok {
			extra = append(extra, p)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d missing (partition, offset), e.g. %s", len(missing), firstPositions(missing)))
	}
	if len(dups) > 0 {
		problems = append(problems, fmt.Sprintf("%d received more than once, e.g. %s", len(dups), firstPositions(dups)))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected, e.g. %s", len(extra), firstPositions(extra)))
	}
	if len(wrong) > 0 {
		problems = append(problems, fmt.Sprintf("%d with a different value, e.g. %s", len(wrong), strings.Join(wrong[:min(2, len(wrong))], " ")))
	}
	if len(problems) > 0 {
		return Failf("%s: %d received, %d expected: %s", what, len(got), len(want), strings.Join(problems, "; "))
	}
	return nil
}

func firstPositions(ps []position) string {
	sort.Slice(ps, func(i, j int) bool {
		return ps[i].partition < ps[j].partition || ps[i].partition == ps[j].partition && ps[i].offset < ps[j].offset
	})
	parts := make([]string, 0, 3)
	for _, p := range ps[:min(3, len(ps))] {
		parts = append(parts, fmt.Sprintf("(%d, %d)", p.partition, p.offset))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// checkOrder: offsets must increase per partition in the order a consumer received them.
func checkOrder(what string, records []Record) error {
	last := map[int32]int64{}
	for _, r := range records {
		if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
			return Failf("%s: partition %d offset %d came after %d", what, r.Partition, r.Offset, prev)
		}
		last[r.Partition] = r.Offset
	}
	return nil
}

// waitFor polls condition until it holds; CheckFailed at the deadline (with detail()).
func waitFor(what string, condition func() bool, timeout time.Duration, detail func() string) error {
	deadline := time.Now().Add(timeout)
	for !condition() {
		if time.Now().After(deadline) {
			suffix := ""
			if detail != nil {
				suffix = "; " + detail()
			}
			return Failf("timed out after %s waiting for %s%s", timeout, what, suffix)
		}
		time.Sleep(pollInterval)
	}
	return nil
}

// hold: condition must stay true until the time until.
func hold(what string, condition func() bool, until time.Time, detail func() string) error {
	for time.Now().Before(until) {
		if !condition() {
			return Failf("%s did not hold; %s", what, detail())
		}
		time.Sleep(pollInterval)
	}
	return nil
}
