// compat-franz: franz-go in the client compatibility scenario (e2e/clients/CONTRACT.md).
//
// kgo produces, consumes and runs the groups (its default cooperative-sticky
// balancer, so assignments arrive incrementally); kadm creates, lists and
// describes topics, lists end offsets and fetches committed offsets. A static
// member's Close keeps its membership (kgo sends no LeaveGroup for an instance ID).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"strom/e2e/go/internal/scenario"
)

var codecs = map[string]kgo.CompressionCodec{
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

type adapter struct {
	args  scenario.Args
	admin *kadm.Client
}

func (a *adapter) opts(extra ...kgo.Opt) []kgo.Opt {
	base := connection(a.args)
	if a.args.Debug {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stdout, kgo.LogLevelDebug, func() string { return time.Now().Format("[15:04:05.000] ") })))
	}
	return append(base, extra...)
}

// connection: the seed broker and, in the security phase, TLS and SASL SCRAM-SHA-512.
func connection(args scenario.Args) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(args.Bootstrap)}
	if sec := args.Security; sec != nil {
		opts = append(opts, kgo.DialTLSConfig(sec.TLS))
		if sec.Kind == "sasl" {
			opts = append(opts, kgo.SASL(scram.Auth{User: sec.User, Pass: sec.Password}.AsSha512Mechanism()))
		}
	}
	return opts
}

func (a *adapter) Produce(ctx context.Context, topic string, messages []scenario.Message, o scenario.ProduceOptions) ([]scenario.Record, error) {
	opts := a.opts(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(20*time.Millisecond))
	// kgo is idempotent unless told otherwise; the plain produce turns it off so
	// both kinds of producer are exercised.
	if !o.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if o.Compression != "" {
		opts = append(opts, kgo.ProducerBatchCompression(codecs[o.Compression]))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	records := make([]*kgo.Record, len(messages))
	for i, m := range messages {
		records[i] = &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value}
	}
	results := cl.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	acked := make([]scenario.Record, len(results))
	for i, r := range results {
		acked[i] = scenario.Record{Partition: r.Record.Partition, Offset: r.Record.Offset, Key: r.Record.Key, Value: r.Record.Value}
	}
	return acked, nil
}

func (a *adapter) ReadTopic(ctx context.Context, topic string) ([]scenario.Record, error) {
	ends, err := a.admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		starts[o.Partition] = kgo.NewOffset().AtStart()
	})
	cl, err := kgo.NewClient(a.opts(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	next := map[int32]int64{}
	var records []scenario.Record
	short := func() bool {
		for p, end := range want {
			if next[p] < end {
				return true
			}
		}
		return false
	}
	for short() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, scenario.Failf("read %s: positions %v short of the ends %v: %v", topic, next, want, ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return nil, fmt.Errorf("read %s: partition %d: %w", topic, errs[0].Partition, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			records = append(records, scenario.Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
			next[r.Partition] = r.Offset + 1
		})
	}
	return records, nil
}

func (a *adapter) CreateTopic(ctx context.Context, name string, partitions int32) error {
	resp, err := a.admin.CreateTopic(ctx, partitions, 1, nil, name)
	if err != nil {
		return err
	}
	return resp.Err
}

func (a *adapter) ListTopics(ctx context.Context) ([]string, error) {
	topics, err := a.admin.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	return topics.Names(), nil
}

func (a *adapter) DescribeTopic(ctx context.Context, name string) (map[int32]int32, error) {
	topics, err := a.admin.ListTopics(ctx, name)
	if err != nil {
		return nil, err
	}
	t, ok := topics[name]
	if !ok || t.Err != nil {
		return map[int32]int32{}, nil
	}
	out := map[int32]int32{}
	for p, d := range t.Partitions {
		out[p] = d.Leader
		if d.Err != nil {
			out[p] = -1
		}
	}
	return out, nil
}

func (a *adapter) Committed(ctx context.Context, group string) (map[int32]int64, error) {
	resps, err := a.admin.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, o := range resps[a.args.Topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, o.Err)
		}
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

func (a *adapter) Lacks() map[string]string { return nil }

func (a *adapter) Close() { a.admin.Close() }

// member is one kgo group consumer with its own polling goroutine.
type member struct {
	*scenario.MemberState
	cl        *kgo.Client
	topic     string
	stop      context.CancelFunc
	polling   sync.WaitGroup
	closeOnce sync.Once
}

func (a *adapter) NewMember(group, label string, o scenario.MemberOptions) (scenario.Member, error) {
	m := &member{MemberState: scenario.NewMemberState(label, o.Paused), topic: a.args.Topic}
	reset := kgo.NewOffset().AtStart()
	if o.ResetNone {
		reset = kgo.NoResetOffset()
	}
	ours := func(assigned map[string][]int32) []int32 { return assigned[m.topic] }
	opts := a.opts(
		kgo.ClientID(label),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(a.args.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(scenario.SessionTimeout),
		kgo.HeartbeatInterval(scenario.HeartbeatInterval),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { m.Assigned(ours(p)) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { m.Revoked(ours(p)) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { m.Revoked(ours(p)) }),
	)
	if o.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(o.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	if o.Paused {
		// A paused topic stays paused across assignments: the member joins but fetches nothing.
		cl.PauseFetchTopics(m.topic)
	}
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.polling.Add(1)
	go m.poll(ctx)
	return m, nil
}

func (m *member) poll(ctx context.Context) {
	defer m.polling.Done()
	for {
		fetches := m.cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			m.Error(fmt.Sprintf("poll: %s[%d]: %v", topic, partition, err), errors.Is(err, kerr.FencedInstanceID))
		})
		var got []scenario.Record
		fetches.EachRecord(func(r *kgo.Record) {
			got = append(got, scenario.Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		})
		m.Got(got...)
	}
}

func (m *member) Release() error {
	m.cl.ResumeFetchTopics(m.topic)
	return m.MemberState.Release()
}

func (m *member) Commit() error {
	ctx, cancel := context.WithTimeout(context.Background(), scenario.CallTimeout)
	defer cancel()
	return m.cl.CommitUncommittedOffsets(ctx)
}

func (m *member) Close() error {
	m.closeOnce.Do(func() {
		m.cl.Close() // leaves the group unless this is a static member
		m.stop()
		m.polling.Wait()
	})
	return nil
}

func main() {
	args := scenario.ParseArgs()
	version := fmt.Sprintf("franz-go %s / kadm %s",
		scenario.ModuleVersion("github.com/twmb/franz-go"), scenario.ModuleVersion("github.com/twmb/franz-go/pkg/kadm"))
	scenario.Main(args, "franz-go", version, func(args scenario.Args) (scenario.Adapter, error) {
		cl, err := kgo.NewClient(connection(args)...)
		if err != nil {
			return nil, err
		}
		return &adapter{args: args, admin: kadm.NewClient(cl)}, nil
	})
}
