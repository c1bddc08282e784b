"""kafka-reassign-partitions and kafka-leader-election on three brokers."""

import json
import os
import re

from . import normalise
from .checks_admin import keys_only
from .checks_clients import produce
from .checks_topics import partitions
from .framework import check
from .sides import TRIPLE, wait_for

TOPICS, REASSIGN, ELECT = "kafka-topics", "kafka-reassign-partitions", "kafka-leader-election"


def describe(run, topic):
    return partitions(run.tool(TOPICS, "--describe", "--topic", topic, compare=False))


def json_after(result, heading):
    """The JSON document printed on the line after `heading`."""
    lines = result.out
    for i, line in enumerate(lines):
        if line.startswith(heading):
            for candidate in lines[i + 1:]:
                if candidate.startswith("{"):
                    return json.loads(candidate)
    return None


def shape_only(result, side):
    """Which messages a reassignment command printed, without the ids and JSON."""
    text = [re.sub(r"\{.*\}", "<json>", line) for line in result.out if not normalise.noise(line)]
    text = [re.sub(r"\b\d+(,\d+)*\b", "<n>", line) for line in text]
    return {"exit": result.rc, "lines": text, "errors": result.errors}


def create_pair(run, partitions_count=1):
    """A topic of RF 2, its partition 0 on node indexes 0 and 1; returns their ids."""
    ids = run.side.node_ids()
    assignment = ",".join(f"{ids[0]}:{ids[1]}" for _ in range(partitions_count))
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--replica-assignment", assignment,
                    "--config", "min.insync.replicas=1", compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(20)])
    return ids


@check("reassign.generate", REASSIGN, "--generate", shape=TRIPLE)
def reassign_generate(run):
    ids = create_pair(run)
    spec = run.write("topics.json", json.dumps({"topics": [{"topic": run.topic}], "version": 1}))
    res = run.tool(REASSIGN, "--generate", "--topics-to-move-json-file", spec, "--broker-list",
                   ",".join(map(str, ids)), label="generate", project=shape_only)
    run.ok(res)
    current = json_after(res, "Current partition replica assignment")
    proposed = json_after(res, "Proposed partition reassignment configuration")
    run.expect(current and [(p["partition"], p["replicas"]) for p in current["partitions"]] == [(0, ids[:2])],
               f"current assignment: {current}")
    run.expect(proposed and len(proposed["partitions"]) == 1 and len(proposed["partitions"][0]["replicas"]) == 2
               and set(proposed["partitions"][0]["replicas"]) <= set(ids), f"proposed: {proposed}")


def reassign_file(run, replicas):
    return run.write("move.json", json.dumps(
        {"version": 1, "partitions": [{"topic": run.topic, "partition": 0, "replicas": replicas}]}))


def verify_until_done(run, spec, label):
    def done():
        r = run.tool(REASSIGN, "--verify", "--reassignment-json-file", spec, compare=False)
        return any("is completed" in line for line in r.out) and r

    res = wait_for(done, 60, interval=1)
    run.expect(res, "--verify never reported the reassignment completed")
    if res:
        run.record(label, res, shape_only)
    return res


@check("reassign.execute", REASSIGN, "--execute; --verify; --list; --cancel", shape=TRIPLE)
def reassign_execute(run):
    ids = create_pair(run)
    target = [ids[2], ids[1]]
    spec = reassign_file(run, target)
    res = run.tool(REASSIGN, "--execute", "--reassignment-json-file", spec, label="execute", project=shape_only)
    if not run.ok(res):
        return  # nothing started: no reassignment for --verify to wait for
    run.expect(any("Successfully started partition reassignment" in line for line in res.out), f"execute: {res.out}")
    verify_until_done(run, spec, "verify")
    parts = wait_for(lambda: (lambda p: p.get(0) and sorted(p[0][2]) == sorted(target) and p)(describe(run, run.topic)),
                     30)
    run.expect(parts and parts[0][1] == target, f"after the move: {parts}")
    res = run.tool(REASSIGN, "--list", label="list", project=shape_only)
    run.ok(res)
    run.expect(any("No partition reassignments found" in line for line in res.out), f"--list: {res.out}")
    res = run.tool(REASSIGN, "--cancel", "--reassignment-json-file", spec, label="cancel none", project=shape_only)
    run.expect(res.rc is not None, "--cancel hung")


@check("reassign.throttle", REASSIGN, "--execute --throttle; --verify removes the throttles", shape=TRIPLE)
def reassign_throttle(run):
    ids = create_pair(run)
    target = [ids[1], ids[2]]
    spec = reassign_file(run, target)
    res = run.tool(REASSIGN, "--execute", "--reassignment-json-file", spec, "--throttle", 50000000,
                   label="execute", project=shape_only)
    if not run.ok(res):
        return  # nothing started: no reassignment for --verify to wait for
    run.expect(any("throttle limit was set to 50000000 B/s" in line for line in res.out), f"execute: {res.out}")
    res = verify_until_done(run, spec, "verify")
    if res:
        run.expect(any("Clearing broker-level throttles" in line for line in res.out)
                   and any("Clearing topic-level throttles" in line for line in res.out), f"verify: {res.out}")
    res = run.tool("kafka-configs", "--entity-type", "topics", "--entity-name", run.topic, "--describe",
                   label="topic throttles gone", project=keys_only)
    run.expect(not any("throttled.replicas" in line for line in res.out), f"topic throttles left: {res.out}")
    res = run.tool("kafka-configs", "--entity-type", "brokers", "--entity-name", ids[1], "--describe",
                   label="broker throttles gone", project=keys_only)
    run.expect(not any("throttled.rate" in line for line in res.out), f"broker throttles left: {res.out}")


def election_projection(result, side):
    text = [re.sub(r"cli-[\w-]+-\d+", "<partition>", line) for line in result.out]
    return {"exit": result.rc, "lines": text, "errors": result.errors}


@check("leader_election", ELECT, "--election-type preferred (after a restart) and unclean", shape=TRIPLE)
def leader_election(run):
    ids = run.side.node_ids()
    preferred = ids[2]
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--replica-assignment",
                    f"{ids[2]}:{ids[0]}:{ids[1]}", compare=False))
    in_sync = lambda: (lambda p: p.get(0) and sorted(p[0][2]) == sorted(ids) and p)(describe(run, run.topic))  # noqa: E731
    parts = wait_for(in_sync, 30)
    run.expect(parts and parts[0][0] == preferred, f"the first replica does not lead at creation: {parts}")
    res = run.tool(ELECT, "--election-type", "preferred", "--topic", run.topic, "--partition", 0,
                   label="preferred not needed", project=election_projection)
    run.expect(any("already elected" in line for line in res.out), f"election not needed: {res.out}")
    run.side.stop_node(2)
    try:
        moved = wait_for(lambda: (lambda p: p.get(0) and p[0][0] not in (None, -1, preferred) and p)(
            describe(run, run.topic)), 60)
        run.expect(moved, f"leadership did not move off the stopped node {preferred}")
    finally:
        run.side.start_node(2)
    parts = wait_for(in_sync, 60)
    run.expect(parts, "the restarted node did not rejoin the ISR")
    if parts and parts[0][0] == preferred:
        run.failures.append(f"the leader moved back to {preferred} by itself; the election has nothing to do")
    res = run.tool(ELECT, "--election-type", "preferred", "--topic", run.topic, "--partition", 0,
                   label="preferred", project=election_projection)
    run.ok(res)
    run.expect(any("Successfully completed leader election (PREFERRED)" in line for line in res.out),
               f"preferred: {res.out}")
    parts = describe(run, run.topic)
    run.expect(parts.get(0, (None,))[0] == preferred, f"leader after the preferred election: {parts}")
    res = run.tool(ELECT, "--election-type", "unclean", "--topic", run.topic, "--partition", 0,
                   label="unclean not needed", project=election_projection)
    run.expect(any("already elected" in line for line in res.out), f"unclean on a led partition: {res.out}")
    res = run.tool(ELECT, "--election-type", "preferred", "--all-topic-partitions", label="all partitions",
                   project=lambda r, s: {"exit": r.rc, "errors": r.errors})
    run.ok(res)



@check("reassign.unknown_broker", REASSIGN, "--execute onto a broker id that does not exist (refused)",
       shape=TRIPLE)
def reassign_unknown_broker(run):
    ids = create_pair(run)
    res = run.tool(REASSIGN, "--execute", "--reassignment-json-file", reassign_file(run, [ids[0], 99]),
                   label="execute", project=shape_only)
    run.fails_with(res, "AdminCommandFailedException")
    run.expect(any("Unknown broker id 99" in line for line in res.out + res.err), f"execute: {res.text}")
    parts = describe(run, run.topic)
    run.expect(parts.get(0, (None, []))[1] == ids[:2], f"replicas after the refused move: {parts}")


# A reassignment that stays under way for minutes: RECORDS x RECORD_SIZE bytes to copy at
# THROTTLE bytes/s. Kafka lets a throttled replica fetch up to replica.fetch.max.bytes (1 MiB)
# whenever its rate over the last 11 one-second quota samples is under the limit, so it
# copies about 1 MiB per 11 s in bursts (8 MiB: well over a minute); Strom's token bucket
# keeps to the rate itself (many minutes). The check cancels long before either finishes.
CANCEL_RECORDS, CANCEL_RECORD_SIZE, CANCEL_THROTTLE = 8000, 1024, 10000


def reassignment_lines(result, side):
    """The tool's output with the node ids of `replicas: 3,2,1. adding: 3. removing: 1.` and
    of the JSON replica lists as node indexes, so both kinds compare exactly."""
    def ids(match):
        return match.group(1) + ",".join(f"N{side.index_of(int(i)) + 1}" for i in match.group(2).split(","))

    text = [re.sub(r"(\breplicas: |\badding: |\bremoving: |\"replicas\":\[)(\d+(?:,\d+)*)", ids, line)
            for line in normalise.lines(result.out, side)]
    return {"exit": result.rc, "lines": text, "errors": result.errors}


def throttle_configs(run, label):
    """{entity: {throttle config: value}} of the topic and of every broker, compared by `label`."""
    found = {}
    for entity in (["topics", "--entity-name", run.topic], ["brokers"]):
        res = run.tool("kafka-configs", "--entity-type", *entity, "--describe", label=f"{label} {entity[0]}",
                       project=throttle_projection)
        run.ok(res)
        found.update(throttles(res.out, lambda node: node))
    return found


def throttles(lines, node):
    """{entity: {key: value}} of the replication throttle configs kafka-configs --describe
    printed; `node(id)` names a broker (its id, or its index to compare the kinds)."""
    found, entity = {}, None
    for line in lines:
        header = re.match(r"Dynamic configs for (topic|broker) (\S+) are:", line)
        if header:
            kind, name = header.groups()
            entity = f"{kind} {node(int(name)) if kind == 'broker' else name}"
            found.setdefault(entity, {})
            continue
        config = re.match(r"\s+([a-z.]*throttled[a-z.]*)=(\S*)", line)
        if config and entity:
            key, value = config.groups()
            if key.endswith("replicas") and value != "*":
                value = ",".join(sorted(f"{p}:{node(int(b))}" for p, b in
                                        (pair.split(":") for pair in value.split(",") if pair)))
            found[entity][key] = value
    return found


def throttle_projection(result, side):
    return {"exit": result.rc, "throttles": throttles(result.out, lambda node: f"N{side.index_of(node) + 1}"),
            "errors": result.errors}


def replicas_are(run, replicas, isr):
    """Waits until partition 0 has exactly `replicas` (as a set) and `isr` in sync; returns its row."""
    def settled():
        p = describe(run, run.topic).get(0)
        return p and sorted(p[1]) == sorted(replicas) and sorted(p[2]) == sorted(isr) and p
    return wait_for(settled, 30)


def start_throttled_move(run, spec, label):
    res = run.tool(REASSIGN, "--execute", "--reassignment-json-file", spec, "--throttle", CANCEL_THROTTLE,
                   label=label, project=reassignment_lines)
    run.ok(res)
    run.expect(any(f"throttle limit was set to {CANCEL_THROTTLE} B/s" in line for line in res.out),
               f"{label}: {res.out}")
    return res.rc == 0


def expected_throttles(run, ids, existing, moving):
    """What `--execute --throttle` sets: the rate on every broker of the move, the existing
    replicas throttled as leaders and the moving ones as followers."""
    rate = {"leader.replication.throttled.rate": str(CANCEL_THROTTLE),
            "follower.replication.throttled.rate": str(CANCEL_THROTTLE)}
    found = {f"broker {node}": dict(rate) for node in ids}
    found[f"topic {run.topic}"] = {
        "leader.replication.throttled.replicas": ",".join(sorted(f"0:{b}" for b in existing)),
        "follower.replication.throttled.replicas": ",".join(sorted(f"0:{b}" for b in moving)),
    }
    return found


def copied_bytes(run, i):
    """The bytes of partition 0's log segments on node index i (0 when it has none yet)."""
    path = run.side.partition_dir(run.topic, 0, i)
    try:
        return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".log"))
    except OSError:
        return 0


@check("reassign.cancel", REASSIGN,
       "--execute --throttle; --list and --verify while it moves; --cancel (and --preserve-throttles)",
       shape=TRIPLE)
def reassign_cancel(run):
    ids = run.side.node_ids()
    original = ids[:2]
    total = CANCEL_RECORDS * CANCEL_RECORD_SIZE
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--replica-assignment", f"{ids[0]}:{ids[1]}",
                    "--config", "min.insync.replicas=1", compare=False))
    res = run.tool("kafka-producer-perf-test", "--topic", run.topic, "--num-records", CANCEL_RECORDS,
                   "--record-size", CANCEL_RECORD_SIZE, "--throughput", -1, "--producer-props",
                   f"bootstrap.servers={run.side.bootstrap}", "acks=all", bootstrap=None, compare=False, timeout=120)
    if not run.ok(res, "producer perf test"):
        return
    run.expect(replicas_are(run, original, original), "the topic's replicas are not both in sync before the move")
    throttled = True  # until the last --cancel is seen to remove them
    try:
        # 1. A move to [n2, n1], throttled: n2 copies the log at CANCEL_THROTTLE B/s.
        spec = reassign_file(run, [ids[2], ids[1]])
        if not start_throttled_move(run, spec, "execute"):
            return
        # The throttle slows the copy but does not stop it.
        copied = wait_for(lambda: copied_bytes(run, 2), 30)
        run.expect(0 < copied < total // 2, f"n2 copied {copied} of {total} bytes at once while throttled")
        res = run.tool(REASSIGN, "--list", label="list moving", project=reassignment_lines)
        run.ok(res)
        run.expect(any("Current partition reassignments:" in line for line in res.out)
                   and any(f"{run.topic}-0: replicas: {ids[2]},{ids[1]},{ids[0]}. adding: {ids[2]}. "
                           f"removing: {ids[0]}." in line for line in res.out), f"--list while moving: {res.out}")
        res = run.tool(REASSIGN, "--verify", "--reassignment-json-file", spec, label="verify moving",
                       project=reassignment_lines)
        run.ok(res)
        run.expect(any("is still in progress" in line for line in res.out)
                   and not any("Clearing" in line for line in res.out), f"--verify while moving: {res.out}")
        # 2. Cancelled, keeping the throttles (so those --execute set, and --verify kept, are
        # still there afterwards).
        res = run.tool(REASSIGN, "--cancel", "--reassignment-json-file", spec, "--preserve-throttles",
                       label="cancel preserving throttles", project=reassignment_lines)
        run.ok(res)
        run.expect(any("Successfully cancelled" in line for line in res.out), f"--cancel: {res.out}")
        run.expect(replicas_are(run, original, original),
                   f"the replicas are not back to the original after --cancel: {describe(run, run.topic)}")
        res = run.tool(REASSIGN, "--list", label="list after cancel", project=reassignment_lines)
        run.expect(any("No partition reassignments found" in line for line in res.out), f"--list: {res.out}")
        throttles = expected_throttles(run, ids, original, [ids[2]])
        found = throttle_configs(run, "throttles preserved")
        run.expect(found == throttles, f"throttles after --verify and --cancel --preserve-throttles: {found}, "
                   f"expected {throttles}")
        # 3. A move to [n0, n2], cancelled without --preserve-throttles: the throttles go.
        spec = reassign_file(run, [ids[0], ids[2]])
        if not start_throttled_move(run, spec, "execute again"):
            return
        res = run.tool(REASSIGN, "--cancel", "--reassignment-json-file", spec, label="cancel",
                       project=reassignment_lines)
        run.ok(res)
        run.expect(any("Successfully cancelled" in line for line in res.out), f"--cancel: {res.out}")
        left = throttle_configs(run, "throttles removed")
        throttled = any(left.values())
        run.expect(not throttled, f"--cancel left throttles: {left}")
        run.expect(replicas_are(run, original, original),
                   f"the replicas are not back to the original after --cancel: {describe(run, run.topic)}")
    finally:
        if throttled:  # the checks after this one must not replicate at 10 kB/s
            for node in ids:
                run.tool("kafka-configs", "--entity-type", "brokers", "--entity-name", node, "--alter",
                         "--delete-config", "leader.replication.throttled.rate,follower.replication.throttled.rate",
                         compare=False)
    # 4. Nothing was lost: every offset is there, once.
    res = run.tool("kafka-console-consumer", "--topic", run.topic, "--from-beginning", "--max-messages",
                   CANCEL_RECORDS, "--timeout-ms", 30000, "--property", "print.value=false", "--property",
                   "print.offset=true", compare=False, timeout=90)
    offsets = [line for line in res.out if line.startswith("Offset:")]
    run.expect(sorted(offsets) == sorted(f"Offset:{i}" for i in range(CANCEL_RECORDS)),
               f"consumed {len(offsets)} records ({len(set(offsets))} offsets) of {CANCEL_RECORDS}")
    run.compare_value("records consumed", len(offsets))
