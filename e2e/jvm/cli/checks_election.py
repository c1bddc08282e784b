"""kafka-leader-election --election-type unclean of a partition that is really offline."""

from .checks_clients import consume, produce
from .checks_replication import ELECT, TOPICS, describe, election_projection
from .checks_topics import partitions
from .framework import check
from .sides import TRIPLE, wait_for

# Node indexes: 1 holds the leader and the last ISR member, 2 the replica that falls out of
# the ISR; 0 stays up all along (with one of the others it keeps the metadata quorum).
LEADER, LAGGER = 1, 2
# The console consumer's group makes the first use of __consumer_offsets (RF 3) while node 1
# is down: its replicas there are placed on the fenced broker, as Kafka does.
FROM_START = ("--from-beginning",)
# Finding that group's coordinator with a broker down can take Apache Kafka longer than the
# console consumer's usual 20 s without a record: on a loaded machine (its controller logging
# "Exceptionally slow controller event ... took 7032 ms") it once read nothing at all. Both
# sides still stop at --max-messages; only a side that never delivers waits the full minute.
COORDINATOR_IDLE_MS = 60000


def placement(result, side):
    """Partition 0's leader, replicas and ISR as node indexes (Elr columns left out: Strom has none)."""
    parts = partitions(result)
    leader, replicas, isr = parts.get(0, (None, [], []))
    index = side.index_of
    return {"exit": result.rc, "leader": None if leader in (None, -1) else index(leader),
            "replicas": [index(r) for r in replicas], "isr": sorted(index(r) for r in isr)}


def keyed(result):
    return [line for line in result.out if "\t" in line]


def keyed_projection(result, side):
    return {"exit": result.rc, "records": keyed(result)}


@check("leader_election.unclean_offline", ELECT,
       "--election-type unclean of an offline partition whose one live replica is out of the ISR; "
       "--election-type preferred of it", shape=TRIPLE)
def unclean_offline(run):
    """RF 2 on nodes 1 and 2: node 2 stops and leaves the ISR, records go to node 1 alone,
    node 1 crashes, node 2 comes back. The partition is offline with a live replica outside
    the ISR; only an unclean election brings it back, without the records node 2 never got.

    Node 2 is stopped rather than paused: a paused process still accepts connections, and a
    tool that picks it as its bootstrap or least-loaded node hangs for request.timeout.ms.
    """
    side = run.side
    ids = side.node_ids()
    leader, lagger = ids[LEADER], ids[LAGGER]
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--replica-assignment", f"{leader}:{lagger}",
                    "--config", "min.insync.replicas=1", compare=False))
    both = wait_for(lambda: (lambda p: p.get(0) and p[0][0] == leader and sorted(p[0][2]) == sorted([leader, lagger])
                             and p)(describe(run, run.topic)), 30)
    if not run.expect(both, f"partition 0 never led by {leader} with both replicas in sync"):
        return
    # acks=all with both replicas in the ISR: node 2 has these.
    kept = [(f"k{i}", f"kept{i}") for i in range(5)]
    produce(run, run.topic, kept)
    elected = False
    try:
        side.stop_node(LAGGER)
        alone = wait_for(lambda: (lambda p: p.get(0) and p[0][2] == [leader] and p)(describe(run, run.topic)), 60)
        if not run.expect(alone, f"node {lagger} stopped, but the ISR never shrank to [{leader}]"):
            return
        # In the ISR of one (min.insync.replicas=1): acknowledged, but only node 1 has them.
        produce(run, run.topic, [(f"k{i}", f"lost{i}") for i in range(5, 8)])
        side.kill_node(LEADER)
        side.start_node(LAGGER)  # with node 0 the quorum is back; node 1 is fenced when its session ends

        def unavailable():
            r = run.tool(TOPICS, "--describe", "--unavailable-partitions", "--topic", run.topic, compare=False)
            return r.rc == 0 and len(r.out) == 1 and "Leader: none" in r.out[0] and r

        res = wait_for(unavailable, 60)
        if not run.expect(res, "the partition, its leader killed, never listed by --unavailable-partitions"):
            return
        run.record("unavailable", res)
        offline = placement(res, side)
        run.expect(offline["leader"] is None and LAGGER not in offline["isr"], f"offline: {res.out}")
        res = run.tool(ELECT, "--election-type", "preferred", "--topic", run.topic, "--partition", 0,
                       label="preferred offline", project=election_projection)
        run.fails_with(res, "PreferredLeaderNotAvailableException", "PREFERRED_LEADER_NOT_AVAILABLE")
        res = run.tool(ELECT, "--election-type", "unclean", "--topic", run.topic, "--partition", 0,
                       label="unclean", project=election_projection)
        elected = run.ok(res) and run.expect(
            any("Successfully completed leader election (UNCLEAN)" in line for line in res.out), f"unclean: {res.out}")
        if not elected:
            return
        led = wait_for(lambda: (lambda p: p.get(0) and p[0][0] == lagger and p)(describe(run, run.topic)), 30)
        run.expect(led, f"partition 0 not led by {lagger} after the unclean election")
        res = run.tool(TOPICS, "--describe", "--topic", run.topic, label="after unclean", project=placement)
        run.expect(partitions(res).get(0, (None, [], []))[2] == [lagger], f"ISR after the unclean election: {res.out}")
        res = run.tool(ELECT, "--election-type", "unclean", "--topic", run.topic, "--partition", 0,
                       label="unclean again", project=election_projection)
        run.expect(any("already elected" in line for line in res.out), f"unclean of a led partition: {res.out}")
        # Writable again; the new records follow the kept ones (the lost ones are gone).
        fresh = [(f"k{i}", f"fresh{i}") for i in range(8, 11)]
        produce(run, run.topic, fresh, label="produce after", compare=True)
        want = [f"{k}\t{v}" for k, v in kept + fresh]
        res = consume(run, run.topic, *FROM_START, "--max-messages", len(want), "--property", "print.key=true",
                      label="consume after", project=keyed_projection, idle_ms=COORDINATOR_IDLE_MS)
        run.expect(keyed(res) == want, f"consumed from the unclean leader {keyed(res)}, want {want}")
    finally:
        rejoined = restore(run, leader, lagger)
    if not elected or not rejoined:
        return
    # Node 1 had the lost records; back as a follower it must have dropped them. Lead from it
    # again and read: only what the unclean leader had, and what followed.
    res = run.tool(ELECT, "--election-type", "preferred", "--topic", run.topic, "--partition", 0,
                   label="preferred back", project=election_projection)
    run.ok(res)
    res = consume(run, run.topic, *FROM_START, "--max-messages", len(want), "--property", "print.key=true",
                  label="consume from the old leader", project=keyed_projection, idle_ms=COORDINATOR_IDLE_MS)
    run.expect(keyed(res) == want, f"consumed from {leader} after it rejoined: {keyed(res)}, want {want}")


def restore(run, leader, lagger):
    """Starts the nodes the check stopped and waits until both replicas are in sync again,
    so the later checks find three healthy nodes. Returns whether they are."""
    for i in (LAGGER, LEADER):
        if not run.side.running(i):
            try:
                run.side.start_node(i)
            except Exception as e:  # reported; the other node is still started
                run.failures.append(f"restarting node {i}: {e}")
    rejoined = wait_for(lambda: (lambda p: p.get(0) and sorted(p[0][2]) == sorted([leader, lagger]) and p)(
        describe(run, run.topic)), 60)
    return run.expect(rejoined, f"after the restarts, nodes {leader} and {lagger} not both in the ISR of partition 0")
