package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProduceOptions choose the producer for one produce call.
type ProduceOptions struct {
	Idempotent  bool
	Compression string // "" or one of Codecs
}

// Adapter is one client library's side of the scenario. Every call is bounded by ctx.
type Adapter interface {
	// Produce sends messages with acks=all and returns the acknowledged records
	// in send order; any failure is an error.
	Produce(ctx context.Context, topic string, messages []Message, opts ProduceOptions) ([]Record, error)
	// ReadTopic reads every partition from the beginning up to its end offset, without a group.
	ReadTopic(ctx context.Context, topic string) ([]Record, error)
	CreateTopic(ctx context.Context, name string, partitions int32) error
	ListTopics(ctx context.Context) ([]string, error)
	// DescribeTopic maps each partition to its leader (-1 when it has an error).
	DescribeTopic(ctx context.Context, name string) (map[int32]int32, error)
	// Committed reads the group's committed offsets of the scenario topic without
	// joining the group; a partition without a commit is absent.
	Committed(ctx context.Context, group string) (map[int32]int64, error)
	NewMember(group, label string, opts MemberOptions) (Member, error)
	// Lacks names the capabilities the library itself lacks (reported n/a), with why.
	Lacks() map[string]string
	Close()
}

// Args are the driver's flags.
type Args struct {
	Bootstrap, Topic, Group, Phase, State string
	Debug                                 bool
	// The security phase's flags.
	SASLBootstrap, MTLSBootstrap, CA, ClientCert, ClientKey, ScramUser, ScramPassword string
	// Security is set (by Main, security phase only) for the adapter of one secured listener.
	Security *Security
}

type state struct {
	Committed map[string]*int64 `json:"committed"`
	Later     [][3]any          `json:"later"` // [partition, offset, value]
}

func withTimeout(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	return f(ctx)
}

func produce(a Adapter, topic string, messages []Message, opts ProduceOptions) ([]Record, error) {
	var acked []Record
	err := withTimeout(func(ctx context.Context) (err error) {
		acked, err = a.Produce(ctx, topic, messages, opts)
		return err
	})
	if err == nil && len(acked) != len(messages) {
		err = Failf("produce to %s: %d of %d acknowledged", topic, len(acked), len(messages))
	}
	return acked, err
}

func readTopic(a Adapter, topic string) (records []Record, err error) {
	err = withTimeout(func(ctx context.Context) error { records, err = a.ReadTopic(ctx, topic); return err })
	return records, err
}

func describeTopic(a Adapter, topic string) (parts map[int32]int32, err error) {
	err = withTimeout(func(ctx context.Context) error { parts, err = a.DescribeTopic(ctx, topic); return err })
	return parts, err
}

func committed(a Adapter, group string) (offsets map[int32]int64, err error) {
	err = withTimeout(func(ctx context.Context) error { offsets, err = a.Committed(ctx, group); return err })
	return offsets, err
}

func partitionsOf(described map[int32]int32) []int32 {
	return slices.Sorted(maps.Keys(described))
}

func allPartitions(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

func checkProduce(a Adapter, args Args, r *report) ([]Record, error) {
	acked, err := produce(a, args.Topic, keyed("one", keyedCount, 0), ProduceOptions{})
	if err != nil {
		return nil, err
	}
	perPartition := map[int32][]int64{}
	for _, rec := range acked {
		perPartition[rec.Partition] = append(perPartition[rec.Partition], rec.Offset)
	}
	for p, offsets := range perPartition {
		slices.Sort(offsets)
		for i, o := range offsets {
			if o != int64(i) {
				return nil, Failf("partition %d of the fresh topic acknowledged offsets %v..., expected 0..%d", p, offsets[:min(5, len(offsets))], len(offsets)-1)
			}
		}
	}
	// Metadata and admin: the topic was auto-created with six partitions, and the
	// admin client creates a topic and then lists and describes it.
	described, err := describeTopic(a, args.Topic)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(partitionsOf(described), allPartitions(Partitions)) || slices.Min(slices.Collect(maps.Values(described))) < 0 {
		return nil, Failf("auto-created %s described as %v, expected %d partitions with leaders", args.Topic, described, Partitions)
	}
	created := args.Topic + "-admin"
	if err := withTimeout(func(ctx context.Context) error { return a.CreateTopic(ctx, created, 3) }); err != nil {
		return nil, fmt.Errorf("create topic %s: %w", created, err)
	}
	var lastErr error
	if err := waitFor(created+" (3 partitions) to be listed and described", func() bool {
		var topics []string
		lastErr = withTimeout(func(ctx context.Context) (err error) { topics, err = a.ListTopics(ctx); return err })
		if lastErr != nil || !slices.Contains(topics, created) {
			return false
		}
		var parts map[int32]int32
		parts, lastErr = describeTopic(a, created)
		return lastErr == nil && slices.Equal(partitionsOf(parts), allPartitions(3))
	}, groupTimeout, func() string { return fmt.Sprintf("last error: %v", lastErr) }); err != nil {
		return nil, err
	}
	r.passed("produce", fmt.Sprintf("%d keyed acks=all acknowledged at offsets 0.. of partitions %v; admin created and listed a 3-partition topic",
		keyedCount, slices.Sorted(maps.Keys(perPartition))))
	return acked, nil
}

func checkIdempotence(a Adapter, args Args, r *report) ([]Record, error) {
	acked, err := produce(a, args.Topic, keyed("idem", idemCount, 0), ProduceOptions{Idempotent: true})
	if err != nil {
		return nil, err
	}
	all, err := readTopic(a, args.Topic)
	if err != nil {
		return nil, err
	}
	var back []Record
	for _, rec := range all {
		if strings.HasPrefix(string(rec.Value), "idem:") {
			back = append(back, rec)
		}
	}
	if err := compare("idempotent messages read back", back, byPosition(acked)); err != nil {
		return nil, err
	}
	slices.SortFunc(back, func(x, y Record) int { return int(x.Offset - y.Offset) })
	for p := int32(0); p < Partitions; p++ {
		var seqs []int
		for _, rec := range back {
			if rec.Partition == p {
				seq, _ := strconv.Atoi(strings.TrimPrefix(string(rec.Value), "idem:"))
				seqs = append(seqs, seq)
			}
		}
		if !slices.IsSorted(seqs) {
			return nil, Failf("idempotent messages out of send order in partition %d: %v", p, seqs[:min(10, len(seqs))])
		}
	}
	r.passed("idempotence", fmt.Sprintf("%d messages, each stored once, in send order per partition", idemCount))
	return acked, nil
}

func checkCompression(a Adapter, args Args, r *report) error {
	for _, codec := range Codecs {
		topic := args.Topic + "-" + codec
		acked, err := produce(a, topic, keyed(codec, perCodec, 40), ProduceOptions{Compression: codec})
		if err != nil {
			return fmt.Errorf("%s: %w", codec, err)
		}
		back, err := readTopic(a, topic)
		if err != nil {
			return fmt.Errorf("%s: %w", codec, err)
		}
		if err := compare(codec+" round trip", back, byPosition(acked)); err != nil {
			return err
		}
		if err := checkOrder(codec+" round trip", back); err != nil {
			return err
		}
	}
	r.passed("compression", strings.Join(Codecs, ", "))
	return nil
}

// checkGroups decides consume and groups and the commit half of commit_resume;
// it writes --state for phase two.
func checkGroups(a Adapter, args Args, r *report, expected []Record) {
	var members []Member
	defer func() { closeAll(members) }()
	r.step("consume/groups/commit_resume", []string{"consume", "groups", "commit_resume"}, func() error {
		for i := range 3 {
			m, err := a.NewMember(args.Group, fmt.Sprintf("member-%d", i), MemberOptions{Paused: true})
			if err != nil {
				return err
			}
			members = append(members, m)
		}
		if err := waitFor("three members to split the six partitions", func() bool { return splitOK(members) },
			groupTimeout, func() string { return describe(members) }); err != nil {
			return err
		}
		three := describe(members)
		logf("group formed: %s", three)
		for _, m := range members {
			if err := m.Release(); err != nil {
				return err
			}
		}
		want := byPosition(expected)
		if len(want) == 0 {
			return Failf("nothing was produced to consume")
		}
		received := func() int {
			n := 0
			for _, m := range members {
				n += len(m.State().Records())
			}
			return n
		}
		if err := waitFor(fmt.Sprintf("the %d messages produced so far", len(want)), func() bool { return received() >= len(want) },
			consumeTimeout, func() string { return fmt.Sprintf("received %d; %s", received(), describe(members)) }); err != nil {
			return err
		}
		var got []Record
		for _, m := range members {
			got = append(got, m.State().Records()...)
			if err := checkOrder(m.State().Label+"'s consumption", m.State().Records()); err != nil {
				return err
			}
		}
		if err := compare("group consumption", got, want); err != nil {
			return err
		}
		r.passed("consume", fmt.Sprintf("%d messages exactly once across 3 members", len(want)))

		for _, m := range members {
			if err := m.Commit(); err != nil {
				return fmt.Errorf("%s: commit: %w", m.State().Label, err)
			}
		}
		ends := map[int32]int64{}
		for _, rec := range got {
			ends[rec.Partition] = max(ends[rec.Partition], rec.Offset+1)
		}
		offsets, err := committed(a, args.Group)
		if err != nil {
			return fmt.Errorf("committed offsets: %w", err)
		}
		if !maps.Equal(offsets, ends) {
			r.failed("commit_resume", fmt.Sprintf("committed offsets read back %v, consumed up to %v", offsets, ends))
		}

		r.step("groups", []string{"groups"}, func() error {
			if err := members[0].Close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			remaining := members[1:]
			// Sooner than the closed member's session could expire: its LeaveGroup did it.
			if err := waitFor("the two remaining members to split the six partitions after one left",
				func() bool { return splitOK(remaining) }, leaveTimeout, func() string { return describe(remaining) }); err != nil {
				return err
			}
			r.passed("groups", fmt.Sprintf("3 members: %s; after a clean close: %s", three, describe(remaining)))
			return nil
		})
		closeAll(members)
		members = nil

		later, err := produce(a, args.Topic, keyed("two", laterCount, 0), ProduceOptions{})
		if err != nil {
			return err
		}
		s := state{Committed: map[string]*int64{}}
		for p := range int32(Partitions) {
			if o, ok := offsets[p]; ok {
				s.Committed[strconv.Itoa(int(p))] = &o
			} else {
				s.Committed[strconv.Itoa(int(p))] = nil
			}
		}
		for _, rec := range later {
			s.Later = append(s.Later, [3]any{rec.Partition, rec.Offset, string(rec.Value)})
		}
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := os.WriteFile(args.State, data, 0o644); err != nil {
			return err
		}
		r.passed("commit_resume", fmt.Sprintf("phase one: committed offsets read back = consumed ends %v", ends))
		return nil
	})
}

func checkStaticMembership(a Adapter, args Args) (string, error) {
	group := args.Group + "-static"
	var members []Member
	defer func() { closeAll(members) }()
	start := func(instance, label string) (*MemberState, Member, error) {
		m, err := a.NewMember(group, label, MemberOptions{InstanceID: instance})
		if err != nil {
			return nil, nil, err
		}
		members = append(members, m)
		return m.State(), m, nil
	}
	a1, am, err := start("a", "static-a")
	if err != nil {
		return "", err
	}
	b, bm, err := start("b", "static-b")
	if err != nil {
		return "", err
	}
	pair := []Member{am, bm}
	if err := waitFor("static members a and b to split the six partitions", func() bool { return splitOK(pair) },
		groupTimeout, func() string { return describe(pair) }); err != nil {
		return "", err
	}
	aParts, bParts, bCallbacks := a1.Assignment(), b.Assignment(), b.RebalanceCallbacks()
	logf("static group formed: %s", describe(pair))

	stopped := time.Now()
	if err := am.Close(); err != nil { // a static member's close keeps its membership: no LeaveGroup
		return "", fmt.Errorf("close static-a: %w", err)
	}
	a2, a2m, err := start("a", "static-a-restarted")
	if err != nil {
		return "", err
	}
	if err := waitFor("the restarted 'a' to get an assignment", func() bool { return len(a2.Assignment()) > 0 },
		groupTimeout, func() string { return describe([]Member{a2m, bm}) }); err != nil {
		return "", err
	}
	if !slices.Equal(a2.Assignment(), aParts) {
		return "", Failf("restarted 'a' got %v, before it had %v", a2.Assignment(), aParts)
	}
	// Past the session timeout of the old 'a' too: its expiry must not rebalance either.
	if err := hold("'b' keeping its partitions without a rebalance callback while 'a' came back", func() bool {
		return slices.Equal(b.Assignment(), bParts) && b.RebalanceCallbacks() == bCallbacks && slices.Equal(a2.Assignment(), aParts)
	}, stopped.Add(SessionTimeout+2*time.Second), func() string {
		return fmt.Sprintf("%s; b had %v, rebalance callbacks %d -> %d", describe([]Member{a2m, bm}), bParts, bCallbacks, b.RebalanceCallbacks())
	}); err != nil {
		return "", err
	}

	b2, b2m, err := start("b", "static-b-duplicate")
	if err != nil {
		return "", err
	}
	if err := waitFor("one of the two members with group.instance.id 'b' to be fenced", func() bool { return b.Fenced() || b2.Fenced() },
		groupTimeout, func() string { return describe([]Member{bm, b2m}) }); err != nil {
		return "", err
	}
	which := "the newer"
	if b.Fenced() {
		which = "the older"
	}
	return fmt.Sprintf("restarted 'a' got %v back, 'b' untouched; %s 'b' fenced by a duplicate instance id", aParts, which), nil
}

func phaseOne(a Adapter, args Args, r *report) {
	var expected []Record
	r.step("produce", []string{"produce"}, func() error {
		acked, err := checkProduce(a, args, r)
		expected = append(expected, acked...)
		return err
	})
	r.step("idempotence", []string{"idempotence"}, func() error {
		if r.decided("idempotence") {
			return nil
		}
		acked, err := checkIdempotence(a, args, r)
		expected = append(expected, acked...)
		return err
	})
	r.step("compression", []string{"compression"}, func() error { return checkCompression(a, args, r) })
	checkGroups(a, args, r, expected)
	r.step("static_membership", []string{"static_membership"}, func() error {
		if r.decided("static_membership") {
			return nil
		}
		note, err := checkStaticMembership(a, args)
		if err == nil {
			r.passed("static_membership", note)
		}
		return err
	})
}

func phaseTwo(a Adapter, args Args, r *report) {
	r.step("commit_resume", []string{"commit_resume"}, func() error {
		data, err := os.ReadFile(args.State)
		var s state
		if err == nil {
			err = json.Unmarshal(data, &s)
		}
		if err != nil {
			return Failf("no usable state from phase one (%v)", err)
		}
		recorded := map[int32]int64{}
		for p, o := range s.Committed {
			n, err := strconv.Atoi(p)
			if err != nil {
				return Failf("state file: partition %q", p)
			}
			if o != nil {
				recorded[int32(n)] = *o
			}
		}
		want := map[position]string{}
		for _, l := range s.Later {
			p, pok := l[0].(float64)
			o, ook := l[1].(float64)
			v, vok := l[2].(string)
			if !pok || !ook || !vok {
				return Failf("state file: bad entry %v", l)
			}
			want[position{int32(p), int64(o)}] = v
		}
		offsets, err := committed(a, args.Group)
		if err != nil {
			return fmt.Errorf("committed offsets: %w", err)
		}
		if !maps.Equal(offsets, recorded) {
			return Failf("committed offsets after the restart %v, phase one committed %v", offsets, recorded)
		}
		m, err := a.NewMember(args.Group, "resume", MemberOptions{ResetNone: true})
		if err != nil {
			return err
		}
		defer closeAll([]Member{m})
		s2 := m.State()
		if err := waitFor(fmt.Sprintf("the %d messages produced after the commit", len(want)), func() bool {
			have := map[position]bool{}
			for _, rec := range s2.Records() {
				have[position{rec.Partition, rec.Offset}] = true
			}
			for p := range want {
				if !have[p] {
					return false
				}
			}
			return true
		}, consumeTimeout, func() string { return fmt.Sprintf("received %d; %s", len(s2.Records()), describe([]Member{m})) }); err != nil {
			return err
		}
		if err := compare("resumed consumption", s2.Records(), want); err != nil {
			return err
		}
		if err := checkOrder("resumed consumption", s2.Records()); err != nil {
			return err
		}
		r.passed("commit_resume", fmt.Sprintf("commits survived the restart; resumed exactly there (%d messages)", len(want)))
		return nil
	})
}
