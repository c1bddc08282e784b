#!/usr/bin/env python3
"""kafka-configs against Strom and against Apache Kafka 4.4, compared.

Runs the same `kafka-configs` commands (dynamic broker configs for one broker and the
cluster default, topic configs Kafka 4.4 accepts and refuses, group configs) against one
Strom broker and one Apache Kafka node started from the jars, and fails on any difference
in exit code or normalized output (ports and node ids masked, stack frames dropped; for
`--all` the listed keys and their sources are compared, not values that legitimately
differ such as paths).

Usage: configs_diff.py STROM_BINARY [WORKDIR]
"""

import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients"))
from clusters import ApacheKafkaCluster, StromCluster  # noqa: E402

TOOL = os.path.join(HERE, "bin", "kafka-configs")
TOPICS = os.path.join(HERE, "bin", "kafka-topics")
ENV = dict(os.environ, KAFKA_HEAP_OPTS="-Xmx256m")


def run(tool, bootstrap, *args):
    r = subprocess.run(
        [tool, "--bootstrap-server", bootstrap, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    return r.returncode, r.stdout + r.stderr


def normalize(text, bootstrap, node_id):
    lines = []
    for line in text.splitlines():
        if line.startswith("\tat ") or line.strip().startswith("at "):
            continue
        line = line.replace(bootstrap, "BOOTSTRAP")
        line = re.sub(rf"\bbroker {node_id}\b", "broker N", line)
        line = re.sub(rf"--entity-name {node_id}\b", "--entity-name N", line)
        lines.append(line)
    return "\n".join(lines)


def keys_and_sources(text):
    """For `--all`: each listed key with the sources of its synonyms."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s+([a-z0-9.\-]+)=.*synonyms=\{(.*)\}$", line)
        if m:
            sources = re.findall(r"([A-Z_]+_CONFIG):", m.group(2))
            out.append(f"{m.group(1)} {sources}")
    return "\n".join(out)


# (label, tool, args with {id} for the broker's node id, compare: "text" or "all")
CASES = [
    ("refuse log.dirs", TOOL, "--alter --entity-type brokers --entity-name {id} --add-config log.dirs=/x", "text"),
    ("refuse node.id at default", TOOL, "--alter --entity-type brokers --entity-default --add-config node.id=5", "text"),
    ("bad LONG", TOOL, "--alter --entity-type brokers --entity-name {id} --add-config log.retention.ms=abc", "text"),
    ("unknown broker key accepted", TOOL, "--alter --entity-type brokers --entity-name {id} --add-config no.such.key=1", "text"),
    ("per-broker throttle and cleaner", TOOL, "--alter --entity-type brokers --entity-name {id} --add-config leader.replication.throttled.rate=1000,log.cleaner.threads=2", "text"),
    ("cluster default", TOOL, "--alter --entity-type brokers --entity-default --add-config log.retention.ms=5000000,min.insync.replicas=1", "text"),
    ("describe broker", TOOL, "--describe --entity-type brokers --entity-name {id}", "text"),
    ("describe default", TOOL, "--describe --entity-type brokers --entity-default", "text"),
    ("describe brokers", TOOL, "--describe --entity-type brokers", "text"),
    ("describe broker --all", TOOL, "--describe --entity-type brokers --entity-name {id} --all", "dynamic-keys"),
    ("delete-config", TOOL, "--alter --entity-type brokers --entity-name {id} --delete-config log.cleaner.threads", "text"),
    ("create topic", TOPICS, "--create --topic cfg --partitions 2", "text"),
    ("topic --all", TOOL, "--describe --entity-type topics --entity-name cfg --all", "all"),
    ("topic configs Kafka 4.4 accepts", TOOL, "--alter --entity-type topics --entity-name cfg --add-config compression.type=zstd,max.compaction.lag.ms=1000,local.retention.ms=5,remote.storage.enable=false,file.delete.delay.ms=1,message.timestamp.before.max.ms=10", "text"),
    ("throttled replicas", TOOL, "--alter --entity-type topics --entity-name cfg --add-config leader.replication.throttled.replicas=[0:1,1:0],follower.replication.throttled.replicas=*", "text"),
    ("bad throttled replicas", TOOL, "--alter --entity-type topics --entity-name cfg --add-config leader.replication.throttled.replicas=[0:1,x]", "text"),
    ("ratio above 1", TOOL, "--alter --entity-type topics --entity-name cfg --add-config min.cleanable.dirty.ratio=2", "text"),
    ("unknown codec", TOOL, "--alter --entity-type topics --entity-name cfg --add-config compression.type=brotli", "text"),
    ("unknown topic key", TOOL, "--alter --entity-type topics --entity-name cfg --add-config foo=1", "text"),
    ("describe topic", TOOL, "--describe --entity-type topics --entity-name cfg", "text"),
    ("group --all", TOOL, "--describe --entity-type groups --entity-name g1 --all", "text"),
    ("group set", TOOL, "--alter --entity-type groups --entity-name g1 --add-config consumer.session.timeout.ms=50000", "text"),
    ("group out of range", TOOL, "--alter --entity-type groups --entity-name g1 --add-config consumer.session.timeout.ms=5", "text"),
    ("group unknown key", TOOL, "--alter --entity-type groups --entity-name g1 --add-config foo=5", "text"),
    ("describe group", TOOL, "--describe --entity-type groups --entity-name g1", "text"),
]


def outcomes(bootstrap, node_id):
    results = []
    for label, tool, args, compare in CASES:
        code, text = run(tool, bootstrap, *args.format(id=node_id).split())
        if compare == "all":
            shown = keys_and_sources(text)
        elif compare == "dynamic-keys":
            # Only what is set dynamically: Strom reads fewer static keys than Kafka.
            shown = "\n".join(
                line for line in keys_and_sources(text).splitlines() if "DYNAMIC" in line
            )
        else:
            shown = normalize(text, bootstrap, node_id)
        results.append((label, code, shown))
    return results


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="configs-diff-")
    with ApacheKafkaCluster(os.path.join(work, "kafka"), 1, {"log.retention.hours": "100"}) as kafka:
        expected = outcomes(kafka.bootstrap, kafka.node_id(0))
    with StromCluster(binary, os.path.join(work, "strom"), 1, {"log.retention.hours": "100"}) as strom:
        got = outcomes(strom.bootstrap, 0)
    differences = 0
    for (label, kcode, ktext), (_, scode, stext) in zip(expected, got):
        if (kcode, ktext) != (scode, stext):
            differences += 1
            print(f"DIFFERENT: {label}\n--- kafka (exit {kcode})\n{ktext}\n--- strom (exit {scode})\n{stext}\n")
        else:
            print(f"same: {label}")
    print(f"{len(CASES) - differences}/{len(CASES)} kafka-configs commands behave as on Kafka 4.4")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
