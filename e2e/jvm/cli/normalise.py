"""Turns a tool's output into what may be compared between Strom and Kafka.

What legitimately differs between two clusters is replaced by a placeholder: node ids,
topic ids, ports and hosts, timestamps, cluster ids, client and member ids, paths, CRCs,
epochs. An error is compared by its Kafka exception class or error name, never by its
message text. What is left must be equal on both sides.
"""

import re

_EXCEPTION = re.compile(r"\b((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error))\b")
_ERROR_NAME = re.compile(r"\b([A-Z][A-Z_]{3,}[A-Z])\b")
_KAFKA_ERROR_NAMES = {
    "UNKNOWN_TOPIC_OR_PARTITION", "POLICY_VIOLATION", "OFFSET_OUT_OF_RANGE", "ELECTION_NOT_NEEDED",
    "PREFERRED_LEADER_NOT_AVAILABLE", "ELIGIBLE_LEADERS_NOT_AVAILABLE", "INVALID_REPLICATION_FACTOR",
    "INVALID_PARTITIONS", "NO_REASSIGNMENT_IN_PROGRESS", "INVALID_REPLICA_ASSIGNMENT",
    "GROUP_ID_NOT_FOUND", "NON_EMPTY_GROUP", "GROUP_SUBSCRIBED_TO_TOPIC", "INVALID_CONFIG",
    "UNSUPPORTED_VERSION", "SECURITY_DISABLED", "INVALID_REQUEST", "TOPIC_ALREADY_EXISTS",
    "UNKNOWN_SERVER_ERROR", "NOT_LEADER_OR_FOLLOWER", "LEADER_NOT_AVAILABLE",
}

_RULES = [
    # log4j's "[2026-12-06 02:20:55,550] " prefix
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\] "), ""),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<datetime>"),
    (re.compile(r"\b(?:127\.0\.0\.1|localhost)(?:/127\.0\.0\.1)?:\d+"), "<host:port>"),
    (re.compile(r"/127\.0\.0\.1\b"), "/<host>"),
    (re.compile(r"\b(TopicId|topicId|DirectoryId)(\"?[:=]\s*\"?)[A-Za-z0-9_-]{22}"), r"\1\2<id>"),
    (re.compile(r"\b(ClusterId|clusterId)(\"?[:=]\s*\"?)[A-Za-z0-9_-]{22}"), r"\1\2<cluster>"),
    # member ids and the client ids the tools make up
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b(console-consumer|console-producer|perf-producer-client|adminclient|consumer|producer)-[\w.-]*\d+\b"),
     r"\1-<n>"),
    (re.compile(r"\b(CreateTime|LogAppendTime|timestamp|crc|Epoch|LeaderEpoch|HighWatermark|LogEndOffset|"
                r"LastFetchTimestamp|LastCaughtUpTimestamp|position|partitionLeaderEpoch|producerId|producerEpoch)"
                r"(\"?[:=]\s*\"?)-?\d+"), r"\1\2<n>"),
    (re.compile(r"\b1\d{12}\b"), "<epoch-ms>"),
]


def exceptions(text):
    """The Kafka exception class names (short form) and Kafka error names in text, sorted."""
    found = {m.group(1).rsplit(".", 1)[-1] for m in _EXCEPTION.finditer(text)}
    found |= {m.group(1) for m in _ERROR_NAME.finditer(text) if m.group(1) in _KAFKA_ERROR_NAMES}
    # The admin client's words for an API the broker does not list (kafka-transactions prints no class).
    found |= {f"unsupported {m.group(1)}" for m in re.finditer(r"does not support ([A-Z_]+)", text)}
    # The future's wrapper says nothing about the broker.
    found.discard("ExecutionException")
    return sorted(found)


def line(text, side):
    """One output line with everything side-specific replaced."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    for path in side_paths(side):
        text = text.replace(path, "<dir>")
    # Message text after an exception class differs by design; keep the class.
    text = _EXCEPTION.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r"((?:Exception|Error)):\s.*$", r"\1", text)
    text = re.sub(r"^(Error while executing [\w ]+?command)\s*:.*$", r"\1", text)
    # kafka-topics prints a topic's configs in the broker's order: compare them as a set.
    text = re.sub(r"(\tConfigs: )(\S+)$", lambda m: m.group(1) + ",".join(sorted(m.group(2).split(","))), text)
    return text.rstrip()


def side_paths(side):
    paths = []
    if side is not None:
        for i in range(side.size):
            paths.append(side.data_dir(i))
    return paths


def node_ids(text, side):
    """Replaces the node ids in the fields the tools print them in by N (single broker) or Nk."""
    def one(match):
        return match.group(1) + _ids(match.group(2), side)

    text = re.sub(r"\b(Leader: |Replicas: |Isr: |Elr: |LastKnownElr: |broker\"?:\s*|[Bb]roker |brokers )([\d,]+)", one, text)
    text = re.sub(r"(\()(\d+)(\))", one, text)  # "(0)" after the coordinator's address
    return text


def _ids(ids, side):
    out = []
    for raw in ids.split(","):
        if not raw.isdigit():
            out.append(raw)
        elif side is None or side.size == 1:
            out.append("N")
        else:
            out.append(f"N{side.index_of(int(raw)) + 1}")
    return ",".join(out)


def noise(text):
    """Lines that say nothing about the broker: stack frames and the tools' own notices."""
    stripped = text.strip()
    return (
        stripped.startswith("at ")
        or stripped.startswith("... ")
        or "is deprecated and will be removed" in stripped
        or "KIP-848" in stripped
        or stripped == ""
    )


def lines(raw_lines, side, ids=True):
    out = []
    for raw in raw_lines:
        if noise(raw):
            continue
        text = line(raw, side)
        if ids:
            text = node_ids(text, side)
        out.append(text)
    return out
