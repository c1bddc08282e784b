package dev.strom.jvm.compat;

import dev.strom.jvm.compat.Report.CheckFailed;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One subscribed KafkaConsumer in its own thread (KafkaConsumer is not thread-safe).
 *
 * <p>The thread polls continuously, which is what keeps a member in its group, and runs the
 * scenario's requests (resume, commit, close) between polls. While not released, every
 * newly assigned partition is paused: the member takes part in the group but reads nothing
 * until the scenario says so.
 */
final class Member {
    static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);

    final String label;
    private final String topic;
    private final Properties props;
    private final BlockingQueue<FutureTask<?>> requests = new LinkedBlockingQueue<>();
    private KafkaConsumer<String, String> consumer;
    private volatile boolean closed;
    private boolean released;
    // Shared with the scenario thread; guarded by this.
    private Set<Integer> assignment = Set.of();
    private int callbacks;
    private final List<Rec> records = new ArrayList<>();
    private final List<String> errors = new ArrayList<>();
    private final List<Throwable> exceptions = new ArrayList<>();
    private boolean fenced;

    Member(String label, String topic, Properties props, boolean paused) throws Exception {
        this.label = label;
        this.topic = topic;
        this.props = props;
        this.released = !paused;
        CompletableFuture<Void> opened = new CompletableFuture<>();
        Thread thread = new Thread(() -> run(opened), label);
        thread.setDaemon(true);
        thread.start();
        try {
            opened.get(CALL_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new CheckFailed(label + ": could not open the consumer: " + Report.describe(e.getCause()));
        }
    }

    private void run(CompletableFuture<Void> opened) {
        try {
            consumer = new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
            consumer.subscribe(List.of(topic), new Listener());
        } catch (RuntimeException e) {
            opened.completeExceptionally(e);
            return;
        }
        opened.complete(null);
        while (!closed) {
            FutureTask<?> request;
            while ((request = requests.poll()) != null) {
                request.run();
            }
            if (closed) {
                break;
            }
            try {
                List<Rec> polled = new ArrayList<>();
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                    polled.add(new Rec(r.partition(), r.offset(), r.key(), r.value()));
                }
                synchronized (this) {
                    records.addAll(polled);
                }
            } catch (RuntimeException e) {
                // Recorded; the member keeps polling as an application would.
                error("poll: " + Report.describe(e), e);
                try {
                    Thread.sleep(200);
                } catch (InterruptedException interrupted) {
                    return;
                }
            }
        }
    }

    /** Records the rebalance callbacks; they run inside poll(), in the member's thread. */
    private final class Listener implements ConsumerRebalanceListener {
        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            // consumer.assignment() is the whole assignment, for eager and incremental protocols alike.
            Set<Integer> now = partitionsOf(consumer.assignment());
            synchronized (Member.this) {
                assignment = now;
                callbacks++;
            }
            Report.log(label + ": assigned " + partitionsOf(parts) + " -> " + now);
            if (!released && !parts.isEmpty()) {
                consumer.pause(parts);
            }
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            revoked(parts, "revoked");
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> parts) {
            revoked(parts, "lost");
        }

        private void revoked(Collection<TopicPartition> parts, String how) {
            Set<Integer> gone = partitionsOf(parts);
            synchronized (Member.this) {
                Set<Integer> left = new TreeSet<>(assignment);
                left.removeAll(gone);
                assignment = Set.copyOf(left);
                callbacks++;
            }
            Report.log(label + ": " + how + " " + gone);
        }
    }

    static Set<Integer> partitionsOf(Collection<TopicPartition> parts) {
        Set<Integer> out = new TreeSet<>();
        for (TopicPartition tp : parts) {
            out.add(tp.partition());
        }
        return out;
    }

    private synchronized void error(String message, Throwable e) {
        if (errors.isEmpty() || !errors.get(errors.size() - 1).equals(message)) {
            errors.add(message);
            exceptions.add(e);
            Report.log(label + ": error: " + message);
        }
        fenced = fenced || e instanceof FencedInstanceIdException;
    }

    /** Runs fn in the member's thread, between two polls, and returns its result. */
    <T> T call(String what, Callable<T> fn) throws Exception {
        FutureTask<T> task = new FutureTask<>(fn);
        requests.add(task);
        try {
            return task.get(CALL_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new CheckFailed(label + ": " + what + " did not return within " + CALL_TIMEOUT.toSeconds() + "s");
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception cause ? cause : e;
        }
    }

    void release() throws Exception {
        call("resume", () -> {
            released = true;
            consumer.resume(consumer.assignment());
            return null;
        });
    }

    void commit() throws Exception {
        call("commit", () -> {
            consumer.commitSync(CALL_TIMEOUT);
            return null;
        });
    }

    /** Closes the consumer (a dynamic member leaves its group; a static member does not) and ends the thread. */
    void close() throws Exception {
        if (closed) {
            return;
        }
        call("close", () -> {
            closed = true;
            closeConsumer();
            return null;
        });
    }

    @SuppressWarnings("deprecation") // close(Duration): the API both 4.0 and 4.4 have
    private void closeConsumer() {
        consumer.close(CALL_TIMEOUT);
    }

    synchronized Set<Integer> assignment() {
        return assignment;
    }

    synchronized int rebalanceCallbacks() {
        return callbacks;
    }

    synchronized List<Rec> records() {
        return List.copyOf(records);
    }

    synchronized List<String> errors() {
        return List.copyOf(errors.subList(Math.max(0, errors.size() - 5), errors.size()));
    }

    synchronized List<Throwable> exceptions() {
        return List.copyOf(exceptions);
    }

    synchronized boolean fenced() {
        return fenced;
    }

    synchronized String describe() {
        return label + "=" + assignment + (errors.isEmpty() ? "" : " errors=" + errors());
    }

    /** Closes members; a close that fails is logged, not raised (cleanup path). */
    static void closeAll(List<Member> members) {
        for (Member m : members) {
            try {
                m.close();
            } catch (Exception e) {
                Report.log(m.label + ": close failed: " + Report.describe(e));
            }
        }
    }
}
