package dev.strom.jvm.compat;

import dev.strom.jvm.compat.Report.CheckFailed;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The Java client's producer, group-less consumer and Admin, as the scenario uses them. */
final class Clients implements AutoCloseable {
    static final Duration TIMEOUT = Duration.ofSeconds(30); // one produce, admin call or read

    private final String bootstrap;
    private final String topic;
    private final Map<String, Object> security;
    private final Admin admin;

    Clients(String bootstrap, String topic) {
        this(bootstrap, topic, Map.of());
    }

    /**
     * security: settings every client made here gets (the security phase's listener:
     * security.protocol, sasl.*, ssl.*).
     */
    Clients(String bootstrap, String topic, Map<String, Object> security) {
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.security = Map.copyOf(security);
        Properties props = connection();
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) TIMEOUT.toMillis());
        this.admin = Admin.create(props);
    }

    /** bootstrap.servers and the security settings, which every client's properties start from. */
    private Properties connection() {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.putAll(security);
        return props;
    }

    /**
     * Sends (key, value) pairs with acks=all and returns the acknowledged records in send
     * order. The Java client turns idempotence on by default; the plain produces turn it off
     * so that the idempotence column alone checks it.
     */
    List<Rec> produce(String to, List<String[]> messages, boolean idempotent, String compression) throws Exception {
        Properties props = connection();
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.LINGER_MS_CONFIG, 20);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, idempotent);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) TIMEOUT.toMillis());
        if (compression != null) {
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        }
        Rec[] acked = new Rec[messages.size()];
        List<String> failures = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < messages.size(); i++) {
                int index = i;
                String[] kv = messages.get(i);
                producer.send(new ProducerRecord<>(to, kv[0], kv[1]), (RecordMetadata md, Exception e) -> {
                    synchronized (acked) {
                        if (e != null) {
                            failures.add("#" + index + ": " + Report.describe(e));
                        } else {
                            acked[index] = new Rec(md.partition(), md.offset(), kv[0], kv[1]);
                        }
                    }
                });
            }
            producer.flush();
        }
        synchronized (acked) {
            long missing = Arrays.stream(acked).filter(r -> r == null).count();
            if (missing > 0 || !failures.isEmpty()) {
                throw new CheckFailed("produce to " + to + ": " + missing + " not acknowledged, "
                        + failures.size() + " failed " + failures.subList(0, Math.min(3, failures.size())));
            }
            return List.of(acked);
        }
    }

    /** Every record of the topic, read without a group (assign) up to the end offsets. */
    List<Rec> readTopic(String from) throws Exception {
        List<TopicPartition> parts = new ArrayList<>();
        for (int p : describeTopic(from).keySet()) {
            parts.add(new TopicPartition(from, p));
        }
        Properties props = connection();
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            Map<TopicPartition, Long> ends = consumer.endOffsets(parts, TIMEOUT);
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            List<Rec> records = new ArrayList<>();
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (parts.stream().anyMatch(tp -> consumer.position(tp, TIMEOUT) < ends.get(tp))) {
                if (System.nanoTime() > deadline) {
                    Map<Integer, Long> positions = new TreeMap<>();
                    parts.forEach(tp -> positions.put(tp.partition(), consumer.position(tp)));
                    throw new CheckFailed("read " + from + ": positions " + positions + " short of the ends " + ends
                            + " after " + TIMEOUT.toSeconds() + "s");
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    records.add(new Rec(r.partition(), r.offset(), r.key(), r.value()));
                }
            }
            return records;
        }
    }

    void createTopic(String name, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1)))
                .all()
                .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    }

    Set<String> listTopics() throws Exception {
        return admin.listTopics().names().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    }

    /** partition -> leader id (-1 without a leader); empty when the topic is unknown. */
    Map<Integer, Integer> describeTopic(String name) throws Exception {
        Map<String, TopicDescription> found;
        try {
            found = admin.describeTopics(List.of(name)).allTopicNames().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof UnknownTopicOrPartitionException) {
                return Map.of();
            }
            throw e;
        }
        Map<Integer, Integer> leaders = new TreeMap<>();
        for (TopicPartitionInfo p : found.get(name).partitions()) {
            leaders.put(p.partition(), p.leader() == null ? -1 : p.leader().id());
        }
        return leaders;
    }

    /** The group's committed offsets (null: none), read by a consumer that does not join it. */
    Map<Integer, Long> committed(String group, int partitions) {
        Properties props = connection();
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        Set<TopicPartition> parts = new java.util.HashSet<>();
        for (int p = 0; p < partitions; p++) {
            parts.add(new TopicPartition(topic, p));
        }
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            Map<TopicPartition, OffsetAndMetadata> got = consumer.committed(parts, TIMEOUT);
            Map<Integer, Long> result = new TreeMap<>();
            for (TopicPartition tp : parts) {
                OffsetAndMetadata o = got.get(tp);
                result.put(tp.partition(), o == null ? null : o.offset());
            }
            return result;
        }
    }

    /** Consumer properties of a group member (classic protocol unless extra says otherwise). */
    Properties memberProps(String group, String label, String instanceId, String offsetReset, Map<String, Object> extra) {
        Properties props = connection();
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, label);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, offsetReset);
        if (instanceId != null) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        }
        props.putAll(new HashMap<>(extra));
        return props;
    }

    @Override
    public void close() {
        admin.close(TIMEOUT);
    }
}
