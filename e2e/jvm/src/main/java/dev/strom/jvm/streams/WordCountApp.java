package dev.strom.jvm.streams;

import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams word count, run by e2e/jvm/streams_suite.py against Strom and Apache Kafka.
 *
 * <pre>
 *   kafka-run-class dev.strom.jvm.streams.WordCountApp --bootstrap HOST:PORT --application-id ID
 *       --input TOPIC --output TOPIC --guarantee at_least_once|exactly_once_v2
 *       --replication-factor N --state-dir DIR
 * </pre>
 *
 * Lines of the input topic are split into lower-case words (runs of [A-Za-z0-9_]), counted
 * per word through a repartition topic and a state store with its changelog, and every new
 * count goes to the output topic (word -> count as a long). The program runs until SIGTERM
 * (a clean close that leaves the group) or until Streams fails (exit 1); it prints "STATE new" on
 * every state change and "FATAL exception" for an error that stops a stream thread, so the
 * driver sees what happened without parsing Streams' logs.
 */
public final class WordCountApp {
    static Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    public static void main(String[] argv) throws InterruptedException {
        Map<String, String> args = parse(argv);
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("application-id"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.get("guarantee"));
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, Integer.parseInt(args.get("replication-factor")));
        props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
        // Counts reach the output topic at each commit; a second instead of 30 s keeps the test short.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);

        KafkaStreams streams = new KafkaStreams(topology(args.get("input"), args.get("output")), props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            say("STATE " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            say("FATAL " + e.getClass().getName() + ": " + e.getMessage()
                    + (root != e ? " (cause " + root.getClass().getName() + ": " + root.getMessage() + ")" : ""));
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        CountDownLatch closed = new CountDownLatch(1);
        // SIGTERM leaves the group (Streams' default close stays in it until the session times
        // out, 45 s), so that the tasks of a closed instance move to the others at once.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(Duration.ofSeconds(20)));
            closed.countDown();
        }, "close-on-sigterm"));
        streams.start();
        stopped.await();
        // Streams failed on its own (not SIGTERM): close it and say so by the exit status.
        boolean failed = streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.PENDING_ERROR;
        streams.close(Duration.ofSeconds(20));
        System.exit(failed ? 1 : 0);
    }

    static void say(String line) {
        synchronized (System.out) {
            System.out.println(line + " (at " + java.time.LocalTime.now() + ")");
            System.out.flush();
        }
    }

    static Map<String, String> parse(String[] argv) {
        Map<String, String> values = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                break;
            }
            values.put(argv[i].substring(2), argv[i + 1]);
        }
        for (String required : List.of("bootstrap", "application-id", "input", "output", "guarantee",
                "replication-factor", "state-dir")) {
            if (!values.containsKey(required)) {
                System.err.println("WordCountApp: --" + required + " is required");
                System.exit(2);
            }
        }
        return values;
    }
}
