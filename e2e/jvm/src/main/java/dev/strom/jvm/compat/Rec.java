package dev.strom.jvm.compat;

/** A record as the scenario compares it: where it is stored, its key and its value. */
record Rec(int partition, long offset, String key, String value) {
    /** Its place in the topic: (partition, offset). */
    Position position() {
        return new Position(partition, offset);
    }

    record Position(int partition, long offset) {}
}
