package dev.strom.jvm.streams;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The word count's input and output, with the plain Java client (streams_suite.py runs it).
 *
 * <pre>
 *   WordCountIO create-topics --bootstrap B --partitions N --replication-factor R TOPIC...
 *   WordCountIO produce --bootstrap B --topic T --file LINES [--from I --to J]
 *   WordCountIO read-counts --bootstrap B --topic T --expect COUNTS.json --timeout S [--at-least]
 * </pre>
 *
 * produce sends lines I..J-1 of the file (one record each, no key, acks=all) and fails
 * unless every one is acknowledged. read-counts reads the output topic from the beginning
 * without a group and keeps the last count per word; it stops once those equal the expected
 * counts (with --at-least: every expected word has at least its count) and have stayed so
 * for three commit intervals, or at the timeout. Its last stdout line is
 * {@code COUNTS {"reached": bool, "records": n, "counts": {word: count}}}; the driver judges.
 */
public final class WordCountIO {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration TIMEOUT = Duration.ofSeconds(30);
    static final Duration SETTLE = Duration.ofSeconds(3); // three of the app's 1 s commit intervals

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            System.err.println("usage: WordCountIO create-topics|produce|read-counts --bootstrap B ...");
            System.exit(2);
        }
        Map<String, String> opts = new HashMap<>();
        List<String> rest = new ArrayList<>();
        for (int i = 1; i < argv.length; i++) {
            if (argv[i].equals("--at-least")) {
                opts.put("at-least", "true");
            } else if (argv[i].startsWith("--") && i + 1 < argv.length) {
                opts.put(argv[i].substring(2), argv[++i]);
            } else {
                rest.add(argv[i]);
            }
        }
        switch (argv[0]) {
            case "create-topics" -> createTopics(opts, rest);
            case "produce" -> produce(opts);
            case "read-counts" -> readCounts(opts);
            default -> {
                System.err.println("WordCountIO: unknown command " + argv[0]);
                System.exit(2);
            }
        }
    }

    static void createTopics(Map<String, String> opts, List<String> topics) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("bootstrap"));
        try (Admin admin = Admin.create(props)) {
            List<NewTopic> wanted = new ArrayList<>();
            for (String t : topics) {
                wanted.add(new NewTopic(t, Integer.parseInt(opts.get("partitions")),
                        Short.parseShort(opts.get("replication-factor"))));
            }
            try {
                admin.createTopics(wanted).all().get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
            System.out.println("CREATED " + topics);
        }
    }

    static void produce(Map<String, String> opts) throws Exception {
        List<String> lines = Files.readAllLines(new File(opts.get("file")).toPath());
        int from = Integer.parseInt(opts.getOrDefault("from", "0"));
        int to = Integer.parseInt(opts.getOrDefault("to", String.valueOf(lines.size())));
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("bootstrap"));
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.LINGER_MS_CONFIG, 10);
        AtomicInteger acked = new AtomicInteger();
        AtomicReference<Exception> failure = new AtomicReference<>();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            for (String line : lines.subList(from, to)) {
                producer.send(new ProducerRecord<>(opts.get("topic"), line), (md, e) -> {
                    if (e != null) {
                        failure.compareAndSet(null, e);
                    } else {
                        acked.incrementAndGet();
                    }
                });
            }
            producer.flush();
        }
        if (failure.get() != null || acked.get() != to - from) {
            System.out.println("PRODUCE FAILED: " + acked.get() + " of " + (to - from) + " acknowledged; " + failure.get());
            System.exit(1);
        }
        System.out.println("PRODUCED " + acked.get());
    }

    static void readCounts(Map<String, String> opts) throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, Number> raw = JSON.readValue(new File(opts.get("expect")), Map.class);
        Map<String, Long> expected = new TreeMap<>();
        raw.forEach((w, n) -> expected.put(w, n.longValue()));
        boolean atLeast = opts.containsKey("at-least");
        String topic = opts.get("topic");
        long deadline = System.nanoTime() + (long) (Double.parseDouble(opts.get("timeout")) * 1e9);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("bootstrap"));
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        Map<String, Long> last = new TreeMap<>();
        int records = 0;
        boolean reached = false;
        try (KafkaConsumer<String, Long> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, TIMEOUT)) {
                parts.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long heldSince = -1;
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                    last.put(r.key(), r.value());
                    records++;
                }
                if (matches(last, expected, atLeast)) {
                    if (heldSince < 0) {
                        heldSince = System.nanoTime();
                    } else if (System.nanoTime() - heldSince >= SETTLE.toNanos()) {
                        reached = true;
                        break;
                    }
                } else {
                    heldSince = -1;
                }
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("reached", reached);
        out.put("records", records);
        out.put("counts", last);
        System.out.println("COUNTS " + JSON.writeValueAsString(out));
    }

    /** The last counts equal the expected ones (atLeast: same words, each count at least). */
    static boolean matches(Map<String, Long> last, Map<String, Long> expected, boolean atLeast) {
        if (!atLeast) {
            return last.equals(expected);
        }
        if (!last.keySet().equals(expected.keySet())) {
            return false;
        }
        return expected.entrySet().stream().allMatch(e -> last.get(e.getKey()) >= e.getValue());
    }
}
