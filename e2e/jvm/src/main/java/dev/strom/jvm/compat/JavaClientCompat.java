package dev.strom.jvm.compat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.strom.jvm.compat.Rec.Position;
import dev.strom.jvm.compat.Report.CheckFailed;
import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.common.errors.UnsupportedVersionException;

/**
 * The Java client (kafka-clients) in the client compatibility suite (e2e/clients/CONTRACT.md).
 *
 * <pre>
 *   e2e/jvm/bin/java-compat 4.4|4.0 --bootstrap HOST:PORT --topic T --group G --phase one|two|security --state FILE
 *       [--sasl-bootstrap H:P --mtls-bootstrap H:P --ca FILE --client-cert FILE --client-key FILE
 *        --scram-user U --scram-password P]   (phase security)
 * </pre>
 *
 * Compiled against kafka-clients 4.4 but calling only API that 4.0 has, so the same program
 * runs as the java-4.4 and java-4.0 rows (the launcher swaps the client jar; --expect-version
 * checks that it did). The last stdout line is {@code COMPAT {json}}.
 *
 * <p>Java specifics: the producer is idempotent by default, so the plain produces set
 * enable.idempotence=false; a static member's close() keeps its membership (no LeaveGroup);
 * a fenced static member gets FencedInstanceIdException from poll(). Beyond the contract's
 * columns, phase one checks the consumer protocol of KIP-848 (group.protocol=consumer): two
 * members of a group must split the six partitions and read the topic exactly once; a broker
 * that lacks the protocol makes the client fail with UnsupportedVersionException, which is
 * reported as "no" (not supported), any other outcome as "fail". The security phase
 * connects with PEM stores (ssl.truststore.type / ssl.keystore.type PEM, the client
 * certificate and key given inline) and SCRAM-SHA-512 through ScramLoginModule.
 */
public final class JavaClientCompat {
    static final int PARTITIONS = 6; // the driver starts the broker with num.partitions=6
    static final int KEYS = 60;
    static final int KEYED = 600;
    static final int IDEMPOTENT = 100;
    static final int PER_CODEC = 10;
    static final int LATER = 300;
    static final int SECURE = 20; // messages round-tripped per secured listener
    static final List<String> CODECS = List.of("gzip", "snappy", "lz4", "zstd");
    static final int SESSION_TIMEOUT_MS = 10_000; // long enough to restart a static member, short enough to wait out
    static final int HEARTBEAT_INTERVAL_MS = 1_000; // members notice a rebalance within a second
    static final double GROUP_TIMEOUT = 45; // seconds for a group to form or re-form
    static final double LEAVE_TIMEOUT = 0.8 * SESSION_TIMEOUT_MS / 1000; // re-form after a LeaveGroup
    static final double CONSUME_TIMEOUT = 45;
    static final double CONSUMER_PROTOCOL_TIMEOUT = 30;
    static final long PHASE_BUDGET_SECONDS = 160; // the driver kills a phase at 180
    static final Map<String, List<String>> PHASE_CAPABILITIES = Map.of(
            "one", List.of("produce", "idempotence", "compression", "consume", "groups", "commit_resume",
                    "static_membership", "consumer_protocol"),
            "two", List.of("commit_resume"),
            "security", List.of("sasl_scram", "mtls"));

    private final Args args;
    private final Clients clients;
    private final Report report;

    private JavaClientCompat(Args args, Clients clients, Report report) {
        this.args = args;
        this.clients = clients;
        this.report = report;
    }

    public static void main(String[] argv) {
        Args args = Args.parse(argv);
        String clientVersion = clientVersion();
        String version = "kafka-clients " + clientVersion;
        Report report = new Report(args.client, version, PHASE_CAPABILITIES.get(args.phase));
        Report.log(version + ": phase " + args.phase + " against " + args.bootstrap);
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(PHASE_BUDGET_SECONDS * 1000);
            } catch (InterruptedException e) {
                return;
            }
            report.emitAndExit("phase over its " + PHASE_BUDGET_SECONDS + "s budget at: " + report.stepName());
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        report.step("phase " + args.phase, PHASE_CAPABILITIES.get(args.phase), () -> {
            if (!clientVersion.startsWith(args.expectVersion + ".")) {
                throw new CheckFailed("the classpath holds kafka-clients " + clientVersion
                        + ", this row is for " + args.expectVersion + ".x (see e2e/jvm/bin/java-compat)");
            }
            if (args.phase.equals("security")) {
                phaseSecurity(args, report);
                return;
            }
            try (Clients clients = new Clients(args.bootstrap, args.topic)) {
                JavaClientCompat scenario = new JavaClientCompat(args, clients, report);
                if (args.phase.equals("one")) {
                    scenario.phaseOne();
                } else {
                    scenario.phaseTwo();
                }
            }
        });
        report.emitAndExit(null);
    }

    /**
     * The kafka-clients version on the classpath, from the properties file every release
     * carries (AppInfoParser, which reads it, moved to an internal package after 4.0).
     */
    static String clientVersion() {
        try (java.io.InputStream in =
                org.apache.kafka.clients.producer.KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            java.util.Properties props = new java.util.Properties();
            if (in != null) {
                props.load(in);
            }
            return props.getProperty("version", "unknown");
        } catch (java.io.IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    // --- phase one

    private void phaseOne() {
        List<Rec> expected = new ArrayList<>();
        report.step("produce", List.of("produce"), () -> expected.addAll(checkProduce()));
        report.step("idempotence", List.of("idempotence"), () -> expected.addAll(checkIdempotence()));
        report.step("compression", List.of("compression"), this::checkCompression);
        List<Rec> later = new ArrayList<>();
        report.step("consume/groups/commit_resume", List.of("consume", "groups", "commit_resume"),
                () -> later.addAll(checkGroups(expected)));
        report.step("static_membership", List.of("static_membership"), this::checkStaticMembership);
        List<Rec> all = new ArrayList<>(expected);
        all.addAll(later);
        report.step("consumer_protocol", List.of("consumer_protocol"), () -> checkConsumerProtocol(all));
    }

    private List<Rec> checkProduce() throws Exception {
        List<Rec> acked = clients.produce(args.topic, keyed("one", KEYED, 0), false, null);
        Map<Integer, List<Long>> offsets = new TreeMap<>();
        for (Rec r : acked) {
            offsets.computeIfAbsent(r.partition(), p -> new ArrayList<>()).add(r.offset());
        }
        for (Map.Entry<Integer, List<Long>> e : offsets.entrySet()) {
            List<Long> sorted = e.getValue().stream().sorted().toList();
            List<Long> want = IntStream.range(0, sorted.size()).mapToObj(i -> (long) i).toList();
            if (!sorted.equals(want)) {
                throw new CheckFailed("partition " + e.getKey() + " of the fresh topic acknowledged offsets "
                        + sorted.subList(0, Math.min(5, sorted.size())) + "..., expected 0.." + (sorted.size() - 1));
            }
        }
        // Metadata and admin: the topic was auto-created with six partitions, and the Admin
        // client creates a topic and then lists and describes it.
        Map<Integer, Integer> described = clients.describeTopic(args.topic);
        if (!described.keySet().equals(partitionSet(PARTITIONS)) || described.containsValue(-1)) {
            throw new CheckFailed("auto-created " + args.topic + " described as " + described
                    + ", expected " + PARTITIONS + " partitions with leaders");
        }
        String created = args.topic + "-admin";
        clients.createTopic(created, 3);
        waitFor(created + " (3 partitions) to be listed and described",
                () -> Boolean.TRUE.equals(quietly(() -> clients.listTopics().contains(created)
                        && clients.describeTopic(created).keySet().equals(partitionSet(3)))),
                GROUP_TIMEOUT, () -> "described as " + quietly(() -> clients.describeTopic(created)));
        report.passed("produce", KEYED + " keyed acks=all acknowledged at offsets 0.. of partitions "
                + offsets.keySet() + "; Admin created, listed and described a 3-partition topic");
        return acked;
    }

    private List<Rec> checkIdempotence() throws Exception {
        List<Rec> acked = clients.produce(args.topic, keyed("idem", IDEMPOTENT, 0), true, null);
        List<Rec> back = clients.readTopic(args.topic).stream().filter(r -> r.value().startsWith("idem:")).toList();
        compare("idempotent messages read back", back, byPosition(acked));
        for (int p = 0; p < PARTITIONS; p++) {
            int partition = p;
            List<Integer> seqs = back.stream()
                    .filter(r -> r.partition() == partition)
                    .sorted((x, y) -> Long.compare(x.offset(), y.offset()))
                    .map(r -> Integer.parseInt(r.value().split(":")[1]))
                    .toList();
            if (!seqs.equals(seqs.stream().sorted().toList())) {
                throw new CheckFailed("idempotent messages out of send order in partition " + p + ": " + seqs);
            }
        }
        report.passed("idempotence", IDEMPOTENT + " messages (enable.idempotence=true), each stored once, "
                + "in send order per partition");
        return acked;
    }

    private void checkCompression() throws Exception {
        List<String> tried = new ArrayList<>();
        for (String codec : CODECS) {
            String topic = args.topic + "-" + codec;
            List<Rec> acked = clients.produce(topic, keyed(codec, PER_CODEC, 40), false, codec);
            List<Rec> back = clients.readTopic(topic);
            compare(codec + " round trip", back, byPosition(acked));
            checkOrder(codec + " round trip", back);
            tried.add(codec);
        }
        // The codec libraries (snappy-java, lz4-java, zstd-jni) are kafka-clients' own dependencies.
        report.passed("compression", String.join(", ", tried));
    }

    /** consume + groups + the commit half of commit_resume; writes --state; returns the later messages. */
    private List<Rec> checkGroups(List<Rec> expected) throws Exception {
        List<Member> members = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                members.add(member(args.group, "member-" + i, null, "earliest", true));
            }
            waitFor("three members to split the six partitions", () -> splitOk(members), GROUP_TIMEOUT,
                    () -> describe(members));
            String three = describe(members);
            Report.log("group formed: " + three);
            for (Member m : members) {
                m.release();
            }
            Map<Position, String> want = byPosition(expected);
            waitFor("the " + want.size() + " messages produced so far",
                    () -> members.stream().mapToInt(m -> m.records().size()).sum() >= want.size(), CONSUME_TIMEOUT,
                    () -> "received " + members.stream().mapToInt(m -> m.records().size()).sum() + "; "
                            + describe(members));
            List<Rec> got = new ArrayList<>();
            for (Member m : members) {
                got.addAll(m.records());
                checkOrder(m.label + "'s consumption", m.records());
            }
            compare("group consumption", got, want);
            report.passed("consume", want.size() + " messages exactly once across 3 members");

            for (Member m : members) {
                m.commit();
            }
            Map<Integer, Long> ends = new TreeMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                ends.put(p, null); // nothing consumed, nothing committed
            }
            for (Rec r : got) {
                ends.merge(r.partition(), r.offset() + 1, Math::max);
            }
            Map<Integer, Long> committed = clients.committed(args.group, PARTITIONS);
            if (!committed.equals(ends)) {
                report.failed("commit_resume", "committed offsets read back " + committed + ", consumed up to " + ends);
            }

            report.step("groups", List.of("groups"), () -> {
                members.get(0).close(); // a dynamic member's close sends LeaveGroup
                List<Member> remaining = members.subList(1, 3);
                // Sooner than the closed member's session could expire: its LeaveGroup did it.
                waitFor("the two remaining members to split the six partitions after one left",
                        () -> splitOk(remaining), LEAVE_TIMEOUT, () -> describe(remaining));
                report.passed("groups", "3 members: " + three + "; after a clean close: " + describe(remaining));
            });
            Member.closeAll(members);

            List<Rec> later = clients.produce(args.topic, keyed("two", LATER, 0), false, null);
            Map<String, Object> state = new LinkedHashMap<>();
            Map<String, Long> committedByName = new TreeMap<>();
            committed.forEach((p, o) -> committedByName.put(String.valueOf(p), o));
            state.put("committed", committedByName);
            state.put("later", later.stream().map(r -> List.of(r.partition(), r.offset(), r.value())).toList());
            Report.JSON.writeValue(new File(args.state), state);
            report.passed("commit_resume", "phase one: committed offsets read back = consumed ends " + ends);
            return later;
        } finally {
            Member.closeAll(members);
        }
    }

    private void checkStaticMembership() throws Exception {
        String group = args.group + "-static";
        List<Member> members = new ArrayList<>();
        try {
            Member a = member(group, "static-a", "a", "earliest", false);
            members.add(a);
            Member b = member(group, "static-b", "b", "earliest", false);
            members.add(b);
            waitFor("static members a and b to split the six partitions", () -> splitOk(List.of(a, b)),
                    GROUP_TIMEOUT, () -> describe(List.of(a, b)));
            Set<Integer> aParts = a.assignment();
            Set<Integer> bParts = b.assignment();
            int bCallbacks = b.rebalanceCallbacks();
            Report.log("static group formed: " + describe(List.of(a, b)));

            long stopped = System.nanoTime();
            a.close(); // a static member's close keeps its membership: no LeaveGroup
            Member a2 = member(group, "static-a-restarted", "a", "earliest", false);
            members.add(a2);
            waitFor("the restarted 'a' to get an assignment", () -> !a2.assignment().isEmpty(), GROUP_TIMEOUT,
                    () -> describe(List.of(a2, b)));
            if (!a2.assignment().equals(aParts)) {
                throw new CheckFailed("restarted 'a' got " + a2.assignment() + ", before it had " + aParts);
            }
            // Past the session timeout of the old 'a' too: its expiry must not rebalance either.
            hold("'b' keeping its partitions without a rebalance callback while 'a' came back",
                    () -> b.assignment().equals(bParts) && b.rebalanceCallbacks() == bCallbacks
                            && a2.assignment().equals(aParts),
                    stopped + (SESSION_TIMEOUT_MS + 2000) * 1_000_000L,
                    () -> describe(List.of(a2, b)) + "; b had " + bParts + ", rebalance callbacks " + bCallbacks
                            + " -> " + b.rebalanceCallbacks());

            Member b2 = member(group, "static-b-duplicate", "b", "earliest", false);
            members.add(b2);
            waitFor("one of the two members with group.instance.id 'b' to be fenced",
                    () -> b.fenced() || b2.fenced(), GROUP_TIMEOUT, () -> describe(List.of(b, b2)));
            String which = b.fenced() ? "the older" : "the newer";
            report.passed("static_membership", "restarted 'a' got " + aParts + " back, 'b' untouched; " + which
                    + " 'b' fenced (FencedInstanceIdException) by a duplicate instance id");
        } finally {
            Member.closeAll(members);
        }
    }

    /** KIP-848: two members with group.protocol=consumer split the partitions and read the topic once. */
    private void checkConsumerProtocol(List<Rec> all) throws Exception {
        String group = args.group + "-kip848";
        List<Member> members = new ArrayList<>();
        try {
            for (int i = 0; i < 2; i++) {
                members.add(member(group, "kip848-" + i, null, "earliest", false, Map.of("group.protocol", "consumer")));
            }
            Map<Position, String> want = byPosition(all);
            long deadline = System.nanoTime() + (long) (CONSUMER_PROTOCOL_TIMEOUT * 1e9);
            while (true) {
                for (Member m : members) {
                    for (Throwable e : m.exceptions()) {
                        if (e instanceof UnsupportedVersionException) {
                            report.unsupported("consumer_protocol", "the broker lacks the consumer group protocol "
                                    + "(KIP-848); the client reports " + Report.describe(e));
                            return;
                        }
                    }
                }
                int received = members.stream().mapToInt(m -> m.records().size()).sum();
                if (splitOk(members) && received >= want.size()) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new CheckFailed("timed out after " + (int) CONSUMER_PROTOCOL_TIMEOUT + "s waiting for two "
                            + "group.protocol=consumer members to split the partitions and read " + want.size()
                            + " messages; received " + received + "; " + describe(members));
                }
                Thread.sleep(100);
            }
            List<Rec> got = new ArrayList<>();
            for (Member m : members) {
                got.addAll(m.records());
                checkOrder(m.label + "'s consumption", m.records());
            }
            compare("group.protocol=consumer consumption", got, want);
            report.passed("consumer_protocol", "2 members with group.protocol=consumer: " + describe(members)
                    + "; " + want.size() + " messages exactly once");
        } finally {
            Member.closeAll(members);
        }
    }

    // --- phase two

    private void phaseTwo() {
        report.step("commit_resume", List.of("commit_resume"), () -> {
            JsonNode state;
            try {
                state = Report.JSON.readTree(new File(args.state));
            } catch (java.io.IOException e) {
                throw new CheckFailed("no usable state from phase one (" + e.getMessage() + ")");
            }
            Map<Integer, Long> recorded = new TreeMap<>();
            state.get("committed").properties().forEach(e -> recorded.put(
                    Integer.parseInt(e.getKey()), e.getValue().isNull() ? null : e.getValue().asLong()));
            Map<Position, String> want = new HashMap<>();
            for (JsonNode r : state.get("later")) {
                want.put(new Position(r.get(0).asInt(), r.get(1).asLong()), r.get(2).asText());
            }
            Map<Integer, Long> committed = clients.committed(args.group, PARTITIONS);
            if (!committed.equals(recorded)) {
                throw new CheckFailed("committed offsets after the restart " + committed + ", phase one committed "
                        + recorded);
            }
            // auto.offset.reset=none: a lost commit is an error, not a silent reset.
            Member m = member(args.group, "resume", null, "none", false);
            try {
                waitFor("the " + want.size() + " messages produced after the commit",
                        () -> m.records().stream().map(Rec::position).collect(Collectors.toSet())
                                .containsAll(want.keySet()),
                        CONSUME_TIMEOUT, () -> "received " + m.records().size() + "; " + describe(List.of(m)));
                compare("resumed consumption", m.records(), want);
                checkOrder("resumed consumption", m.records());
            } finally {
                Member.closeAll(List.of(m));
            }
            report.passed("commit_resume", "commits survived the restart; resumed exactly there ("
                    + want.size() + " messages, auto.offset.reset=none)");
        });
    }

    // --- phase security

    /**
     * sasl_scram and mtls: SECURE keyed messages produced to {@code <topic>-<kind>} and read back
     * exactly, every client connected over the SASL_SSL (SCRAM-SHA-512) or the SSL (client
     * certificate) listener.
     */
    private static void phaseSecurity(Args args, Report report) {
        for (String kind : List.of("sasl", "mtls")) {
            String cap = kind.equals("sasl") ? "sasl_scram" : "mtls";
            report.step(cap, List.of(cap), () -> {
                Map<String, Object> security = new HashMap<>();
                security.put("ssl.truststore.type", "PEM");
                security.put("ssl.truststore.location", args.need("ca"));
                String bootstrap;
                String how;
                if (kind.equals("sasl")) {
                    bootstrap = args.need("sasl-bootstrap");
                    String user = args.need("scram-user");
                    security.put("security.protocol", "SASL_SSL");
                    security.put("sasl.mechanism", "SCRAM-SHA-512");
                    security.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required"
                            + " username=\"" + user + "\" password=\"" + args.need("scram-password") + "\";");
                    how = "SASL_SSL, SCRAM-SHA-512 as " + user;
                } else {
                    bootstrap = args.need("mtls-bootstrap");
                    security.put("security.protocol", "SSL");
                    security.put("ssl.keystore.type", "PEM");
                    security.put("ssl.keystore.certificate.chain", read(args.need("client-cert")));
                    security.put("ssl.keystore.key", read(args.need("client-key")));
                    how = "SSL with a client certificate (ssl.client.auth=required)";
                }
                String topic = args.topic + "-" + kind;
                try (Clients clients = new Clients(bootstrap, args.topic, security)) {
                    List<Rec> acked = clients.produce(topic, keyed(kind, SECURE, 0), false, null);
                    List<Rec> back = clients.readTopic(topic);
                    compare(kind + " round trip", back, byPosition(acked));
                    checkOrder(kind + " round trip", back);
                }
                report.passed(cap, SECURE + " messages produced and read back over " + how);
            });
        }
    }

    private static String read(String path) throws java.io.IOException {
        return java.nio.file.Files.readString(java.nio.file.Path.of(path));
    }

    // --- helpers

    private Member member(String group, String label, String instanceId, String offsetReset, boolean paused)
            throws Exception {
        // The classic protocol's session settings (the consumer protocol refuses them: the broker owns them).
        Map<String, Object> classic = Map.of(
                "session.timeout.ms", SESSION_TIMEOUT_MS, "heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS);
        return member(group, label, instanceId, offsetReset, paused, classic);
    }

    private Member member(String group, String label, String instanceId, String offsetReset, boolean paused,
            Map<String, Object> extra) throws Exception {
        return new Member(label, args.topic, clients.memberProps(group, label, instanceId, offsetReset, extra), paused);
    }

    /** (key, value) pairs: keys key-0..key-59 cycling, values "prefix:seq" (+ compressible padding). */
    static List<String[]> keyed(String prefix, int count, int pad) {
        String filler = " compressible".repeat(pad);
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(new String[] {"key-" + (i % KEYS), prefix + ":" + i + filler});
        }
        return out;
    }

    static Set<Integer> partitionSet(int n) {
        return IntStream.range(0, n).boxed().collect(Collectors.toCollection(TreeSet::new));
    }

    static Map<Position, String> byPosition(List<Rec> records) {
        Map<Position, String> out = new HashMap<>();
        for (Rec r : records) {
            out.put(r.position(), r.value());
        }
        return out;
    }

    /** Every member has partitions, none shared, all covered. */
    static boolean splitOk(List<Member> members) {
        Set<Integer> union = new HashSet<>();
        int total = 0;
        for (Member m : members) {
            Set<Integer> parts = m.assignment();
            if (parts.isEmpty()) {
                return false;
            }
            union.addAll(parts);
            total += parts.size();
        }
        return total == union.size() && union.equals(partitionSet(PARTITIONS));
    }

    static String describe(List<Member> members) {
        return members.stream().map(Member::describe).collect(Collectors.joining(", "));
    }

    /** got must hold every position of want exactly once, with its value, and nothing else. */
    static void compare(String what, List<Rec> got, Map<Position, String> want) throws CheckFailed {
        Map<Position, Integer> seen = new HashMap<>();
        List<String> wrong = new ArrayList<>();
        for (Rec r : got) {
            seen.merge(r.position(), 1, Integer::sum);
            String expected = want.get(r.position());
            if (expected != null && !expected.equals(r.value())) {
                wrong.add(r.position() + "=" + r.value().substring(0, Math.min(40, r.value().length())));
            }
        }
        List<String> problems = new ArrayList<>();
        List<Position> missing = want.keySet().stream().filter(p -> !seen.containsKey(p)).sorted(POSITION_ORDER).toList();
        List<Position> dups = seen.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey)
                .sorted(POSITION_ORDER).toList();
        List<Position> extra = seen.keySet().stream().filter(p -> !want.containsKey(p)).sorted(POSITION_ORDER).toList();
        if (!missing.isEmpty()) {
            problems.add(missing.size() + " missing (partition, offset), e.g. " + first(missing));
        }
        if (!dups.isEmpty()) {
            problems.add(dups.size() + " received more than once, e.g. " + first(dups));
        }
        if (!extra.isEmpty()) {
            problems.add(extra.size() + " unexpected, e.g. " + first(extra));
        }
        if (!wrong.isEmpty()) {
            problems.add(wrong.size() + " with a different value, e.g. " + first(wrong));
        }
        if (!problems.isEmpty()) {
            throw new CheckFailed(what + ": " + got.size() + " received, " + want.size() + " expected: "
                    + String.join("; ", problems));
        }
    }

    private static final java.util.Comparator<Position> POSITION_ORDER =
            java.util.Comparator.comparingInt(Position::partition).thenComparingLong(Position::offset);

    private static <T> List<T> first(List<T> items) {
        return items.subList(0, Math.min(3, items.size()));
    }

    /** Offsets must increase per partition in the order a consumer received them. */
    static void checkOrder(String what, List<Rec> records) throws CheckFailed {
        Map<Integer, Long> last = new HashMap<>();
        for (Rec r : records) {
            Long before = last.get(r.partition());
            if (before != null && r.offset() <= before) {
                throw new CheckFailed(what + ": partition " + r.partition() + " offset " + r.offset()
                        + " came after " + before);
            }
            last.put(r.partition(), r.offset());
        }
    }

    /** Polls condition until it holds; CheckFailed at the deadline (with detail). */
    static void waitFor(String what, BooleanSupplier condition, double timeoutSeconds, Supplier<String> detail)
            throws CheckFailed, InterruptedException {
        long deadline = System.nanoTime() + (long) (timeoutSeconds * 1e9);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new CheckFailed("timed out after " + Math.round(timeoutSeconds) + "s waiting for " + what
                        + "; " + detail.get());
            }
            Thread.sleep(100);
        }
    }

    /** condition must stay true until the System.nanoTime() value `until`. */
    static void hold(String what, BooleanSupplier condition, long until, Supplier<String> detail)
            throws CheckFailed, InterruptedException {
        while (System.nanoTime() < until) {
            if (!condition.getAsBoolean()) {
                throw new CheckFailed(what + " did not hold; " + detail.get());
            }
            Thread.sleep(100);
        }
    }

    /** A client call inside a polled condition: an exception counts as "not yet" (and is logged). */
    static <T> T quietly(ThrowingSupplier<T> call) {
        try {
            return call.get();
        } catch (Exception e) {
            Report.log("(will retry) " + Report.describe(e));
            return null;
        }
    }

    @FunctionalInterface
    interface ThrowingSupplier<T> {
        T get() throws Exception;
    }

    /** The driver's command line (CONTRACT.md) plus --client (row name) and --expect-version. */
    record Args(String bootstrap, String topic, String group, String phase, String state, String client,
            String expectVersion, Map<String, String> values) {
        /** A flag the security phase needs (CheckFailed if the driver did not give it). */
        String need(String flag) throws CheckFailed {
            String value = values.get(flag);
            if (value == null) {
                throw new CheckFailed("--" + flag + " is required for the security phase");
            }
            return value;
        }

        static Args parse(String[] argv) {
            Map<String, String> values = new HashMap<>();
            for (int i = 0; i < argv.length; i++) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                    usage("unexpected argument " + argv[i]);
                }
                values.put(argv[i].substring(2), argv[++i]);
            }
            for (String required : List.of("bootstrap", "topic", "group", "phase", "state", "client", "expect-version")) {
                if (!values.containsKey(required)) {
                    usage("--" + required + " is required");
                }
            }
            if (!PHASE_CAPABILITIES.containsKey(values.get("phase"))) {
                usage("--phase must be one, two or security");
            }
            return new Args(values.get("bootstrap"), values.get("topic"), values.get("group"), values.get("phase"),
                    values.get("state"), values.get("client"), values.get("expect-version"), Map.copyOf(values));
        }

        private static void usage(String problem) {
            System.err.println("JavaClientCompat: " + problem + "\nusage: --client ROW --expect-version 4.4 "
                    + "--bootstrap HOST:PORT --topic T --group G --phase one|two|security --state FILE "
                    + "[--sasl-bootstrap H:P --mtls-bootstrap H:P --ca FILE --client-cert FILE --client-key FILE "
                    + "--scram-user U --scram-password P]");
            System.exit(2);
        }
    }
}
