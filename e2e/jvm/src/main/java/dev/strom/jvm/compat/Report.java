package dev.strom.jvm.compat;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One phase's results, printed once as the {@code COMPAT {json}} line that ends the program
 * (e2e/clients/CONTRACT.md), also by the watchdog when the phase runs over its budget.
 *
 * <p>A capability passes only by an explicit {@link #passed}; whatever no step decided is
 * reported as failed ("not checked") when the phase ends.
 */
final class Report {
    static final ObjectMapper JSON = new ObjectMapper();
    private static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss");

    private final String client;
    private final String version;
    private final List<String> capabilities;
    private final Map<String, String> checks = new LinkedHashMap<>();
    private final Map<String, String> notes = new LinkedHashMap<>();
    private volatile String stepName = "start";
    private boolean emitted;

    Report(String client, String version, List<String> capabilities) {
        this.client = client;
        this.version = version;
        this.capabilities = capabilities;
    }

    /** A timestamped progress line on stdout; member threads log too. */
    static synchronized void log(String message) {
        System.out.println("[" + LocalTime.now().format(CLOCK) + "] " + message);
        System.out.flush();
    }

    synchronized void passed(String cap, String note) {
        if (!"fail".equals(checks.get(cap))) {
            checks.put(cap, "pass");
            notes.put(cap, note);
        }
        log("PASS " + cap + (note.isEmpty() ? "" : ": " + note));
    }

    synchronized void failed(String cap, String note) {
        if ("fail".equals(checks.get(cap))) {
            notes.put(cap, notes.get(cap) + "; " + note);
        } else {
            checks.put(cap, "fail");
            notes.put(cap, note);
        }
        log("FAIL " + cap + ": " + note);
    }

    /**
     * The client asked for a feature and the broker answered cleanly that it lacks it
     * ("no"; the driver accepts this value only for the capabilities CONTRACT.md allows).
     */
    synchronized void unsupported(String cap, String note) {
        if (!checks.containsKey(cap)) {
            checks.put(cap, "no");
            notes.put(cap, note);
        }
        log("NOT SUPPORTED " + cap + ": " + note);
    }

    synchronized boolean decided(String cap) {
        return checks.containsKey(cap);
    }

    /** Runs one block that checks caps: an exception fails each cap it left undecided. */
    void step(String name, List<String> caps, Check body) {
        stepName = name;
        log("--- " + name);
        try {
            body.run();
        } catch (Exception e) {
            String message;
            if (e instanceof CheckFailed) {
                message = e.getMessage();
            } else {
                message = describe(e);
                StringWriter trace = new StringWriter();
                e.printStackTrace(new PrintWriter(trace));
                System.out.print(trace);
            }
            for (String cap : caps) {
                if (!decided(cap)) {
                    failed(cap, message);
                }
            }
        }
    }

    /** Prints the COMPAT line and ends the JVM at once, even if client threads linger. */
    synchronized void emitAndExit(String reason) {
        if (emitted) {
            return;
        }
        emitted = true;
        for (String cap : capabilities) {
            if (!checks.containsKey(cap)) {
                checks.put(cap, "fail");
                notes.put(cap, reason != null ? reason : "not checked (stopped at: " + stepName + ")");
            }
        }
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("client", client);
        line.put("version", version);
        line.put("checks", checks);
        line.put("notes", notes);
        String json;
        try {
            json = JSON.writeValueAsString(line);
        } catch (JsonProcessingException e) {
            json = "{\"client\": \"" + client + "\", \"checks\": {}}";
        }
        System.err.flush();
        System.out.println("COMPAT " + json);
        System.out.flush();
        Runtime.getRuntime().halt(checks.containsValue("fail") ? 1 : 0);
    }

    String stepName() {
        return stepName;
    }

    /** "ExceptionClass: message", with the cause's when the exception only wraps it. */
    static String describe(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null
                && (root instanceof java.util.concurrent.ExecutionException
                        || root instanceof org.apache.kafka.common.KafkaException && root.getCause() != root)) {
            root = root.getCause();
        }
        return root.getClass().getSimpleName() + ": " + root.getMessage();
    }

    @FunctionalInterface
    interface Check {
        void run() throws Exception;
    }

    /** The broker (or the client against it) did not do what Kafka does. */
    static final class CheckFailed extends Exception {
        CheckFailed(String message) {
            super(message);
        }
    }
}
