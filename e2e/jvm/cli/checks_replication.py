"""kafka-reassign-partitions and kafka-leader-election on three brokers."""

import json
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
