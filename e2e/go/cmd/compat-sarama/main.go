// compat-sarama: IBM/sarama in the client compatibility scenario (e2e/clients/CONTRACT.md).
//
// SyncProducer for the plain keyed produce, AsyncProducer for the idempotent and
// compressed ones, ConsumerGroup (range balancer, sarama's default protocol
// version) for the groups, ClusterAdmin for topics and committed offsets. A
// static member's Close keeps its membership (sarama sends no LeaveGroup for an
// instance ID). sarama has no auto.offset.reset=none: the resumed member starts
// from the oldest offset when it finds no commit, so a lost commit shows up as
// re-delivered messages. In the security phase every client connects with TLS (and
// SASL SCRAM-SHA-512, whose client sarama leaves to the application: xdg-go/scram, as
// in sarama's examples).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"strom/e2e/go/internal/scenario"
)

var codecs = map[string]sarama.CompressionCodec{
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

type adapter struct {
	args  scenario.Args
	admin sarama.ClusterAdmin
}

func config(sec *scenario.Security, clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	if sec != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = sec.TLS
		if sec.Kind == "sasl" {
			c.Net.SASL.Enable = true
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			c.Net.SASL.User, c.Net.SASL.Password = sec.User, sec.Password
			c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		}
	}
	return c
}

// scramClient is sarama's SCRAMClient over xdg-go/scram.
type scramClient struct {
	hash         scram.HashGeneratorFcn
	conversation *scram.ClientConversation
}

func (x *scramClient) Begin(user, password, authzID string) error {
	client, err := x.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	x.conversation = client.NewConversation()
	return nil
}

func (x *scramClient) Step(challenge string) (string, error) { return x.conversation.Step(challenge) }

func (x *scramClient) Done() bool { return x.conversation.Done() }

func (a *adapter) brokers() []string { return []string{a.args.Bootstrap} }

func (a *adapter) Produce(ctx context.Context, topic string, messages []scenario.Message, o scenario.ProduceOptions) ([]scenario.Record, error) {
	c := config(a.args.Security, "compat-producer")
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	if o.Idempotent || o.Compression != "" {
		return a.produceAsync(ctx, c, topic, messages, o)
	}
	producer, err := sarama.NewSyncProducer(a.brokers(), c)
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	msgs := make([]*sarama.ProducerMessage, len(messages))
	for i, m := range messages {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
	}
	if err := producer.SendMessages(msgs); err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	acked := make([]scenario.Record, len(msgs))
	for i, m := range msgs {
		acked[i] = scenario.Record{Partition: m.Partition, Offset: m.Offset, Key: messages[i].Key, Value: messages[i].Value}
	}
	return acked, nil
}

func (a *adapter) produceAsync(ctx context.Context, c *sarama.Config, topic string, messages []scenario.Message, o scenario.ProduceOptions) ([]scenario.Record, error) {
	if o.Idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1 // sarama's requirement for idempotence
	}
	if o.Compression != "" {
		c.Producer.Compression = codecs[o.Compression]
	}
	c.Producer.Flush.Frequency = 20 * time.Millisecond
	producer, err := sarama.NewAsyncProducer(a.brokers(), c)
	if err != nil {
		return nil, err
	}
	defer producer.AsyncClose()
	go func() {
		for i, m := range messages {
			producer.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value), Metadata: i}
		}
	}()
	acked := make([]scenario.Record, len(messages))
	for range messages {
		select {
		case m := <-producer.Successes():
			i := m.Metadata.(int)
			acked[i] = scenario.Record{Partition: m.Partition, Offset: m.Offset, Key: messages[i].Key, Value: messages[i].Value}
		case e := <-producer.Errors():
			return nil, fmt.Errorf("produce to %s: %w", topic, e.Err)
		case <-ctx.Done():
			return nil, fmt.Errorf("produce to %s: %w", topic, ctx.Err())
		}
	}
	return acked, nil
}

func (a *adapter) ReadTopic(ctx context.Context, topic string) ([]scenario.Record, error) {
	client, err := sarama.NewClient(a.brokers(), config(a.args.Security, "compat-reader"))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	// Every partition consumer is opened before any is read so that they fetch together.
	type reading struct {
		partition int32
		end       int64
		pc        sarama.PartitionConsumer
	}
	var readings []reading
	defer func() {
		for _, r := range readings {
			r.pc.AsyncClose()
		}
	}()
	for _, p := range partitions {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("end offset of %s[%d]: %w", topic, p, err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		readings = append(readings, reading{p, end, pc})
	}
	var records []scenario.Record
	for _, r := range readings {
		for next := int64(0); next < r.end; {
			select {
			case m := <-r.pc.Messages():
				records = append(records, scenario.Record{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value})
				next = m.Offset + 1
			case e := <-r.pc.Errors():
				return nil, fmt.Errorf("read %s[%d]: %w", topic, r.partition, e.Err)
			case <-ctx.Done():
				return nil, scenario.Failf("read %s[%d]: at %d short of the end %d: %v", topic, r.partition, next, r.end, ctx.Err())
			}
		}
	}
	return records, nil
}

func (a *adapter) CreateTopic(_ context.Context, name string, partitions int32) error {
	return a.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
}

func (a *adapter) ListTopics(context.Context) ([]string, error) {
	topics, err := a.admin.ListTopics()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	return names, nil
}

func (a *adapter) DescribeTopic(_ context.Context, name string) (map[int32]int32, error) {
	topics, err := a.admin.DescribeTopics([]string{name})
	if err != nil {
		return nil, err
	}
	out := map[int32]int32{}
	for _, t := range topics {
		if t.Name != name || !errors.Is(t.Err, sarama.ErrNoError) {
			continue
		}
		for _, p := range t.Partitions {
			out[p.ID] = p.Leader
			if !errors.Is(p.Err, sarama.ErrNoError) {
				out[p.ID] = -1
			}
		}
	}
	return out, nil
}

func (a *adapter) Committed(_ context.Context, group string) (map[int32]int64, error) {
	all := make([]int32, scenario.Partitions)
	for i := range all {
		all[i] = int32(i)
	}
	resp, err := a.admin.ListConsumerGroupOffsets(group, map[string][]int32{a.args.Topic: all})
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range all {
		block := resp.GetBlock(a.args.Topic, p)
		if block == nil {
			return nil, fmt.Errorf("no offset block for partition %d", p)
		}
		if !errors.Is(block.Err, sarama.ErrNoError) {
			return nil, fmt.Errorf("partition %d: %w", p, block.Err)
		}
		if block.Offset >= 0 {
			out[p] = block.Offset
		}
	}
	return out, nil
}

func (a *adapter) Lacks() map[string]string { return nil }

func (a *adapter) Close() { _ = a.admin.Close() }

// member is one sarama ConsumerGroup, consuming in its own goroutine.
type member struct {
	*scenario.MemberState
	group   sarama.ConsumerGroup
	topic   string
	stop    context.CancelFunc
	running sync.WaitGroup

	mu        sync.Mutex
	session   sarama.ConsumerGroupSession // the current generation's, for Commit
	closeOnce sync.Once
	closeErr  error
}

func (a *adapter) NewMember(group, label string, o scenario.MemberOptions) (scenario.Member, error) {
	c := config(a.args.Security, label)
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = scenario.SessionTimeout
	c.Consumer.Group.Heartbeat.Interval = scenario.HeartbeatInterval
	c.Consumer.Group.InstanceId = o.InstanceID
	c.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup(a.brokers(), group, c)
	if err != nil {
		return nil, err
	}
	m := &member{MemberState: scenario.NewMemberState(label, o.Paused), group: cg, topic: a.args.Topic}
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.running.Add(2)
	go m.consume(ctx)
	go m.watchErrors()
	return m, nil
}

func fenced(err error) bool { return errors.Is(err, sarama.ErrFencedInstancedId) }

// consume is the application loop sarama asks for: Consume returns at every rebalance.
func (m *member) consume(ctx context.Context) {
	defer m.running.Done()
	for ctx.Err() == nil {
		err := m.group.Consume(ctx, []string{m.topic}, m)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return
		}
		if err != nil {
			m.Error(fmt.Sprintf("consume: %v", err), fenced(err))
			select { // back off before joining again, as an application would
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (m *member) watchErrors() {
	defer m.running.Done()
	for err := range m.group.Errors() {
		m.Error(err.Error(), fenced(err))
	}
}

// Setup, Cleanup and ConsumeClaim make member a sarama.ConsumerGroupHandler.
func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.session = s
	m.mu.Unlock()
	m.Assigned(s.Claims()[m.topic])
	return nil
}

func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	m.Revoked(s.Claims()[m.topic])
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	select { // a held member reads nothing until released
	case <-m.ReleasedCh():
	case <-s.Context().Done():
		return nil
	}
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			s.MarkMessage(msg, "") // before Got: what the scenario has seen is committable
			m.Got(scenario.Record{Partition: msg.Partition, Offset: msg.Offset, Key: msg.Key, Value: msg.Value})
		case <-s.Context().Done():
			return nil
		}
	}
}

// Commit is sarama's synchronous commit of the marked offsets (auto commit is off);
// sarama reports a failed commit on Errors(), and the scenario reads the offsets back.
func (m *member) Commit() error {
	m.mu.Lock()
	s := m.session
	m.mu.Unlock()
	if s == nil {
		return errors.New("no session to commit in")
	}
	s.Commit()
	return nil
}

func (m *member) Close() error {
	m.closeOnce.Do(func() {
		m.closeErr = m.group.Close() // sends LeaveGroup unless this is a static member
		m.stop()
		m.running.Wait()
	})
	return m.closeErr
}

func main() {
	args := scenario.ParseArgs()
	if args.Debug {
		sarama.Logger = log.New(os.Stdout, "[sarama] ", log.Ltime|log.Lmicroseconds)
	}
	version := "sarama " + scenario.ModuleVersion("github.com/IBM/sarama")
	scenario.Main(args, "sarama", version, func(args scenario.Args) (scenario.Adapter, error) {
		admin, err := sarama.NewClusterAdmin([]string{args.Bootstrap}, config(args.Security, "compat-admin"))
		if err != nil {
			return nil, err
		}
		return &adapter{args: args, admin: admin}, nil
	})
}
