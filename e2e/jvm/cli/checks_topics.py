"""kafka-topics, on one broker and on three (RF 3, min.insync.replicas 2)."""

import re

from .framework import check
from .sides import TRIPLE, wait_for

TOPICS = "kafka-topics"


def partitions(result):
    """{partition: (leader, [replicas], [isr])} from `kafka-topics --describe` output."""
    out = {}
    for line in result.out:
        m = re.search(r"Partition: (\d+)\s+Leader: (-?\d+|none)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)", line)
        if m:
            ids = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
            leader = int(m.group(2)) if m.group(2) != "none" else None
            out[int(m.group(1))] = (leader, ids(m.group(3)), ids(m.group(4)))
    return out


def header(result):
    for line in result.out:
        if line.startswith("Topic:") and "PartitionCount" in line:
            return line
    return ""


@check("topics.create", TOPICS, "--create --partitions 3 --replication-factor 1 --config; --describe")
def create(run):
    res = run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 3, "--replication-factor", 1,
                   "--config", "retention.ms=123456", "--config", "max.message.bytes=200000", label="create")
    run.ok(res)
    run.expect(res.out == [f"Created topic {run.topic}."], f"create printed {res.out}")
    res = run.tool(TOPICS, "--describe", "--topic", run.topic, label="describe")
    run.ok(res)
    head = header(res)
    run.expect("PartitionCount: 3" in head and "ReplicationFactor: 1" in head, f"describe header: {head}")
    run.expect("retention.ms=123456" in head and "max.message.bytes=200000" in head, f"describe configs: {head}")
    parts = partitions(res)
    me = run.side.node_id(0)
    run.expect(parts == {p: (me, [me], [me]) for p in range(3)}, f"describe partitions: {parts}")


@check("topics.list", TOPICS, "--list (and --exclude-internal)")
def list_topics(run):
    for suffix in ("a", "b"):
        run.ok(run.tool(TOPICS, "--create", "--topic", f"{run.topic}-{suffix}", "--partitions", 1, compare=False))
    res = run.tool(TOPICS, "--list", "--exclude-internal", label="list",
                   project=lambda r, s: {"exit": r.rc, "mine": sorted(t for t in r.out if t.startswith(run.topic))})
    run.ok(res)
    run.expect({f"{run.topic}-a", f"{run.topic}-b"} <= set(res.out), f"list: {res.out}")
    run.expect(not any(t.startswith("__") for t in res.out), f"--exclude-internal listed internal topics: {res.out}")


@check("topics.alter_partitions", TOPICS, "--alter --partitions (increase; decrease fails)")
def alter_partitions(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 2, compare=False))
    run.ok(run.tool(TOPICS, "--alter", "--topic", run.topic, "--partitions", 4, label="increase"))
    res = run.tool(TOPICS, "--describe", "--topic", run.topic, label="describe")
    run.expect(sorted(partitions(res)) == [0, 1, 2, 3], f"after increase: {res.out}")
    res = run.tool(TOPICS, "--alter", "--topic", run.topic, "--partitions", 3, label="decrease")
    run.fails_with(res, "InvalidPartitionsException")


@check("topics.delete", TOPICS, "--delete")
def delete(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, compare=False))
    run.ok(run.tool(TOPICS, "--delete", "--topic", run.topic, label="delete"))
    gone = wait_for(lambda: run.topic not in run.tool(TOPICS, "--list", compare=False).out, 30)
    run.expect(gone, "the topic is still listed after --delete")
    run.fails_with(run.tool(TOPICS, "--delete", "--topic", run.topic, label="delete again"),
                   "IllegalArgumentException", "UnknownTopicOrPartitionException")


@check("topics.invalid_name", TOPICS, "--create with an invalid name")
def invalid_name(run):
    run.fails_with(run.tool(TOPICS, "--create", "--topic", "bad name!", label="space"), "InvalidTopicException")
    run.fails_with(run.tool(TOPICS, "--create", "--topic", "x" * 250, label="too long"), "InvalidTopicException")
    run.fails_with(run.tool(TOPICS, "--create", "--topic", "..", label="dots"), "InvalidTopicException")


@check("topics.rf_above_brokers", TOPICS, "--create --replication-factor above the broker count")
def rf_too_big(run):
    res = run.tool(TOPICS, "--create", "--topic", run.topic, "--replication-factor", 2, label="create")
    run.fails_with(res, "InvalidReplicationFactorException")


@check("topics.exists", TOPICS, "--create of an existing topic; --if-not-exists")
def exists(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, label="create"))
    run.fails_with(run.tool(TOPICS, "--create", "--topic", run.topic, label="again"), "TopicExistsException")
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--if-not-exists", label="if-not-exists"))


@check("topics.describe_missing", TOPICS, "--describe of a missing topic")
def describe_missing(run):
    run.fails_with(run.tool(TOPICS, "--describe", "--topic", run.topic, label="describe"),
                   "IllegalArgumentException", "UnknownTopicOrPartitionException")


def triple_describe(result, side):
    """Replica sets differ by placement; compare their shape: sizes, leader in ISR, ISR = replicas."""
    shape = []
    for p, (leader, replicas, isr) in sorted(partitions(result).items()):
        shape.append((p, len(replicas), leader in isr, sorted(isr) == sorted(replicas), len(set(replicas))))
    return {"exit": result.rc, "partitions": shape}


@check("topics.replicated", TOPICS, "--create RF 3 --config min.insync.replicas=2; --describe", shape=TRIPLE)
def replicated(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 3, "--replication-factor", 3,
                    "--config", "min.insync.replicas=2", label="create"))
    ids = sorted(run.side.node_ids())

    def settled():
        res = run.tool(TOPICS, "--describe", "--topic", run.topic, compare=False)
        parts = partitions(res)
        return len(parts) == 3 and all(sorted(i) == ids for _, _, i in parts.values()) and parts

    parts = wait_for(settled, 30)
    run.expect(parts, "the partitions did not reach 3 replicas all in sync")
    for p, (leader, replicas, isr) in (parts or {}).items():
        run.expect(sorted(replicas) == ids and leader in replicas, f"partition {p}: {leader} {replicas} {isr}")
    leaders = {leader for leader, _, _ in (parts or {}).values()}
    run.expect(len(leaders) == 3, f"leaders are not spread over the three brokers: {parts}")
    run.tool(TOPICS, "--describe", "--topic", run.topic, label="describe", project=triple_describe)


@check("topics.under_replicated", TOPICS,
       "--describe --under-replicated-partitions / --unavailable-partitions with a broker stopped", shape=TRIPLE)
def under_replicated(run):
    """Stops the broker of node index 2, sees its partitions under-replicated, starts it again."""
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 3, "--replication-factor", 3,
                    "--config", "min.insync.replicas=2", compare=False))
    ids = sorted(run.side.node_ids())
    full = wait_for(lambda: all(sorted(i) == ids for _, _, i in partitions(
        run.tool(TOPICS, "--describe", "--topic", run.topic, compare=False)).values()), 30)
    run.expect(full, "partitions never fully in sync before the stop")
    res = run.tool(TOPICS, "--describe", "--under-replicated-partitions", "--topic", run.topic, label="none under-replicated")
    run.expect(res.rc == 0 and res.out == [], f"under-replicated before the stop: {res.out}")
    stopped = run.side.node_id(2)
    # A single replica on the node to stop: unavailable while it is down.
    lonely = run.topic + "-lonely"
    run.ok(run.tool(TOPICS, "--create", "--topic", lonely, "--replica-assignment", stopped, compare=False))
    run.side.stop_node(2)
    try:
        def shrunk():
            r = run.tool(TOPICS, "--describe", "--under-replicated-partitions", "--topic", run.topic, compare=False)
            parts = partitions(r)
            return len(parts) == 3 and all(stopped not in isr and len(isr) == 2 for _, _, isr in parts.values()) and r

        res = wait_for(shrunk, 60)
        run.expect(res, f"with node {stopped} stopped, not all 3 partitions listed as under-replicated")
        if res:
            run.record("under-replicated", res, triple_describe)
            for p, (leader, _, _) in partitions(res).items():
                run.expect(leader != stopped, f"partition {p} still led by the stopped node {stopped}")
        res = run.tool(TOPICS, "--describe", "--unavailable-partitions", "--topic", run.topic, label="none unavailable")
        run.expect(res.rc == 0 and res.out == [], f"unavailable with 2 of 3 replicas up: {res.out}")
        res = wait_for(lambda: (lambda r: r.rc == 0 and len(r.out) == 1 and "Leader: none" in r.out[0] and r)(
            run.tool(TOPICS, "--describe", "--unavailable-partitions", "--topic", lonely, compare=False)), 30)
        run.expect(res, f"the partition of {lonely}, its one replica stopped, never listed as unavailable")
        if res:
            run.record("unavailable", res)
    finally:
        run.side.start_node(2)
    back = wait_for(lambda: run.tool(TOPICS, "--describe", "--under-replicated-partitions", "--topic", run.topic,
                                     compare=False).out == [], 60)
    run.expect(back, f"node {stopped} did not rejoin the ISR after its restart")
