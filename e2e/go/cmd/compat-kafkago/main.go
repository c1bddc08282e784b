// compat-kafkago: segmentio/kafka-go in the client compatibility scenario (e2e/clients/CONTRACT.md).
//
// Writer (Hash balancer, RequireAll) produces; Reader with GroupID consumes, with
// synchronous CommitMessages (CommitInterval 0); Client does the admin requests.
// The Reader has no rebalance callback, so a member learns its assignment from the
// Reader's own log line for each new generation ("subscribed to topics and
// partitions: ..."). kafka-go has no group.instance.id setting and no idempotent
// producer, so static_membership and idempotence are n/a; and no
// auto.offset.reset=none: the resumed member starts from the first offset when it
// finds no commit, so a lost commit shows up as re-delivered messages. In the security
// phase every Writer, Reader and Client connects with TLS (and SASL SCRAM-SHA-512 from
// kafka-go's sasl/scram) through the adapter's Transport and Dialer.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"

	"strom/e2e/go/internal/scenario"
)

var codecs = map[string]compress.Compression{
	"gzip":   kafka.Gzip,
	"snappy": kafka.Snappy,
	"lz4":    kafka.Lz4,
	"zstd":   kafka.Zstd,
}

type adapter struct {
	args   scenario.Args
	client *kafka.Client
	// The security phase's connection settings (nil otherwise).
	tls  *tls.Config
	sasl sasl.Mechanism
}

// transport is what the Writer and the Client connect with.
func (a *adapter) transport() kafka.RoundTripper {
	if a.tls == nil {
		return kafka.DefaultTransport
	}
	return &kafka.Transport{TLS: a.tls, SASL: a.sasl}
}

// dialer is what a Reader connects with.
func (a *adapter) dialer(clientID string) *kafka.Dialer {
	return &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, TLS: a.tls, SASLMechanism: a.sasl}
}

func (a *adapter) debugLogger(label string) kafka.Logger {
	if !a.args.Debug {
		return nil
	}
	return kafka.LoggerFunc(func(msg string, args ...any) { scenario.Logf("[kafka-go %s] "+msg, append([]any{label}, args...)...) })
}

func (a *adapter) Produce(ctx context.Context, topic string, messages []scenario.Message, o scenario.ProduceOptions) ([]scenario.Record, error) {
	acked := make([]scenario.Record, len(messages))
	var mu sync.Mutex
	w := &kafka.Writer{
		Addr:                   kafka.TCP(a.args.Bootstrap),
		Transport:              a.transport(),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           20 * time.Millisecond,
		Logger:                 a.debugLogger("writer"),
		// The Writer reports where each batch landed only here.
		Completion: func(batch []kafka.Message, err error) {
			if err != nil {
				return // WriteMessages returns it
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range batch {
				i := m.WriterData.(int)
				acked[i] = scenario.Record{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value}
			}
		},
	}
	if o.Compression != "" {
		w.Compression = codecs[o.Compression]
	}
	msgs := make([]kafka.Message, len(messages))
	for i, m := range messages {
		msgs[i] = kafka.Message{Key: m.Key, Value: m.Value, WriterData: i}
	}
	// A first write to a topic the metadata request just auto-created fails with
	// LEADER_NOT_AVAILABLE before anything is sent (Kafka answers so while the new
	// partitions get leaders); kafka-go leaves the retry to the application.
	err := w.WriteMessages(ctx, msgs...)
	for err == kafka.LeaderNotAvailable && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
			err = w.WriteMessages(ctx, msgs...)
		}
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range acked {
		if r.Value == nil {
			return nil, fmt.Errorf("produce to %s: message %d written but never reported complete", topic, i)
		}
	}
	return acked, nil
}

func (a *adapter) ReadTopic(ctx context.Context, topic string) ([]scenario.Record, error) {
	parts, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(int(p)))
	}
	resp, err := a.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	// One Reader per partition, all at once: each Close waits out its last long poll.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		records  []scenario.Record
		problems []error
	)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("end offset of %s[%d]: %w", topic, po.Partition, po.Error)
		}
		if po.LastOffset == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := a.readPartition(ctx, topic, po.Partition, po.LastOffset)
			mu.Lock()
			defer mu.Unlock()
			records = append(records, got...)
			if err != nil {
				problems = append(problems, err)
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return records, nil
}

func (a *adapter) readPartition(ctx context.Context, topic string, partition int, end int64) ([]scenario.Record, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{a.args.Bootstrap}, Topic: topic, Partition: partition,
		Dialer:  a.dialer("compat-reader"),
		MaxWait: readerMaxWait, Logger: a.debugLogger("reader"),
	})
	var records []scenario.Record
	for next := int64(0); next < end; {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			_ = r.Close()
			return nil, scenario.Failf("read %s[%d]: at %d short of the end %d: %v", topic, partition, next, end, err)
		}
		records = append(records, scenario.Record{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value})
		next = m.Offset + 1
	}
	return records, r.Close()
}

func (a *adapter) CreateTopic(ctx context.Context, name string, partitions int32) error {
	resp, err := a.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: int(partitions), ReplicationFactor: 1}},
	})
	if err != nil {
		return err
	}
	return resp.Errors[name]
}

func (a *adapter) metadata(ctx context.Context, topics []string) ([]kafka.Topic, error) {
	resp, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	return resp.Topics, nil
}

func (a *adapter) ListTopics(ctx context.Context) ([]string, error) {
	topics, err := a.metadata(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		if t.Error == nil {
			names = append(names, t.Name)
		}
	}
	return names, nil
}

func (a *adapter) DescribeTopic(ctx context.Context, name string) (map[int32]int32, error) {
	topics, err := a.metadata(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	out := map[int32]int32{}
	for _, t := range topics {
		if t.Name != name || t.Error != nil {
			continue
		}
		for _, p := range t.Partitions {
			out[int32(p.ID)] = int32(p.Leader.ID)
			if p.Error != nil {
				out[int32(p.ID)] = -1
			}
		}
	}
	return out, nil
}

func (a *adapter) Committed(ctx context.Context, group string) (map[int32]int64, error) {
	all := make([]int, scenario.Partitions)
	for i := range all {
		all[i] = i
	}
	resp, err := a.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{a.args.Topic: all}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[a.args.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[int32(p.Partition)] = p.CommittedOffset
		}
	}
	return out, nil
}

func (a *adapter) Lacks() map[string]string {
	return map[string]string{
		"static_membership": "kafka-go's Reader and ConsumerGroup have no group.instance.id setting (the field exists only in its low-level JoinGroup request types)",
		"idempotence":       "kafka-go has no idempotent producer: its Writer never uses a producer id, so its batches carry no sequence numbers (only a low-level InitProducerID request exists)",
	}
}

func (a *adapter) Close() {}

// readerMaxWait bounds a Reader's fetch long poll. The Reader finishes the poll in
// flight before Close returns and before it rejoins for a rebalance, so its 10 s
// default would stretch every close and rebalance to up to 10 s; far shorter ones
// leave kafka-go a thin margin (a quarter of it) between the broker's wait and its
// own read deadline.
const readerMaxWait = time.Second

// subscribed matches the partitions in the Reader's log line for a new generation;
// its %+v of the assignment reads "map[{topic:T partition:N}:OFFSET ...]".
var subscribed = regexp.MustCompile(`partition:(\d+)\}`)

// member is one Reader with a GroupID; a goroutine fetches once it is released.
type member struct {
	*scenario.MemberState
	reader   *kafka.Reader
	stop     context.CancelFunc
	fetching sync.WaitGroup

	mu        sync.Mutex
	last      map[int]kafka.Message // the last message received per partition, to commit
	closeOnce sync.Once
	closeErr  error
}

func (a *adapter) NewMember(group, label string, o scenario.MemberOptions) (scenario.Member, error) {
	m := &member{MemberState: scenario.NewMemberState(label, o.Paused), last: map[int]kafka.Message{}}
	debug := a.debugLogger(label)
	m.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{a.args.Bootstrap},
		GroupID:           group,
		GroupTopics:       []string{a.args.Topic},
		Dialer:            a.dialer(label),
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // CommitMessages commits synchronously
		SessionTimeout:    scenario.SessionTimeout,
		HeartbeatInterval: scenario.HeartbeatInterval,
		MaxWait:           readerMaxWait,
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			text := fmt.Sprintf(msg, args...)
			if debug != nil {
				debug.Printf("%s", text)
			}
			if strings.HasPrefix(text, "subscribed to topics and partitions:") {
				m.newGeneration(text)
			}
		}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { m.Error(fmt.Sprintf(msg, args...), false) }),
	})
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.fetching.Add(1)
	go m.fetch(ctx)
	return m, nil
}

// newGeneration replaces the assignment with the one the Reader subscribed to.
func (m *member) newGeneration(line string) {
	var parts []int32
	for _, match := range subscribed.FindAllStringSubmatch(line, -1) {
		p, err := strconv.ParseInt(match[1], 10, 32)
		if err != nil {
			m.Error(fmt.Sprintf("unreadable subscription %q", line), false)
			return
		}
		parts = append(parts, int32(p))
	}
	if old := m.Assignment(); len(old) > 0 {
		m.Revoked(old)
	}
	m.Assigned(parts)
}

func (m *member) fetch(ctx context.Context) {
	defer m.fetching.Done()
	select { // a held member fetches nothing until released
	case <-m.ReleasedCh():
	case <-ctx.Done():
		return
	}
	for {
		msg, err := m.reader.FetchMessage(ctx)
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		if err != nil {
			m.Error(fmt.Sprintf("fetch: %v", err), false)
			select { // the Reader is closed or broken; back off as an application would
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		m.mu.Lock()
		m.last[msg.Partition] = msg
		m.mu.Unlock()
		m.Got(scenario.Record{Partition: int32(msg.Partition), Offset: msg.Offset, Key: msg.Key, Value: msg.Value})
	}
}

func (m *member) Commit() error {
	m.mu.Lock()
	msgs := make([]kafka.Message, 0, len(m.last))
	for _, msg := range m.last {
		msgs = append(msgs, msg)
	}
	m.mu.Unlock()
	if len(msgs) == 0 {
		return nil // nothing received, nothing to commit
	}
	ctx, cancel := context.WithTimeout(context.Background(), scenario.CallTimeout)
	defer cancel()
	return m.reader.CommitMessages(ctx, msgs...)
}

func (m *member) Close() error {
	m.closeOnce.Do(func() {
		m.stop()
		m.fetching.Wait()
		m.closeErr = m.reader.Close() // the Reader's group leaves with LeaveGroup
	})
	return m.closeErr
}

func main() {
	args := scenario.ParseArgs()
	version := "kafka-go " + scenario.ModuleVersion("github.com/segmentio/kafka-go")
	scenario.Main(args, "kafka-go", version, func(args scenario.Args) (scenario.Adapter, error) {
		a := &adapter{args: args}
		if sec := args.Security; sec != nil {
			a.tls = sec.TLS
			if sec.Kind == "sasl" {
				mechanism, err := scram.Mechanism(scram.SHA512, sec.User, sec.Password)
				if err != nil {
					return nil, err
				}
				a.sasl = mechanism
			}
		}
		a.client = &kafka.Client{Addr: kafka.TCP(args.Bootstrap), Timeout: scenario.CallTimeout, Transport: a.transport()}
		return a, nil
	})
}
