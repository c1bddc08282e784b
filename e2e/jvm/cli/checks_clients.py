"""kafka-console-producer, kafka-console-consumer and kafka-consumer-groups on one broker."""

import re
import time

from . import normalise
from .framework import check
from .sides import wait_for

TOPICS, PRODUCER, CONSUMER, GROUPS = (
    "kafka-topics", "kafka-console-producer", "kafka-console-consumer", "kafka-consumer-groups")


def produce(run, topic, records, label=None, compare=False):
    """Produces `key:value` lines with parse.key; returns the tool's result."""
    text = "".join(f"{k}:{v}\n" for k, v in records)
    res = run.tool(PRODUCER, "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
                   stdin=text, label=label, compare=compare, bootstrap="--bootstrap-server")
    run.ok(res, "console producer")
    return res


def consume(run, topic, *args, label=None, project=None, compare=True, idle_ms=20000):
    """The console consumer until --max-messages, or until no record came for idle_ms."""
    res = run.tool(CONSUMER, "--topic", topic, "--timeout-ms", idle_ms, *args, label=label, project=project,
                   compare=compare)
    return res


def sorted_stdout(result, side):
    return {"exit": result.rc, "stdout": sorted(normalise.lines(result.out, side))}


def offsets_table(result):
    """{(topic, partition): (current, log end, lag)} from `--describe` (offsets view)."""
    rows = {}
    for line in result.out:
        cols = line.split()
        if len(cols) >= 6 and cols[2].isdigit() and not line.startswith("GROUP"):
            rows[(cols[1], int(cols[2]))] = tuple(cols[3:6])
    return rows


@check("console.keys", PRODUCER, "parse.key/key.separator; consumer --from-beginning, print.key, --max-messages")
def console_keys(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 3, compare=False))
    records = [(f"k{i}", f"v{i}") for i in range(9)]
    produce(run, run.topic, records, label="produce", compare=True)
    res = consume(run, run.topic, "--from-beginning", "--property", "print.key=true", "--max-messages", 9,
                  label="consume", project=sorted_stdout)
    run.ok(res)
    got = sorted(line for line in res.out if "\t" in line)
    run.expect(got == sorted(f"{k}\t{v}" for k, v in records), f"consumed {res.out}")
    run.expect(any(line == "Processed a total of 9 messages" for line in res.err), f"summary: {res.err}")


@check("console.partition_offset", CONSUMER, "--partition --offset --max-messages")
def console_partition_offset(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(6)])
    res = consume(run, run.topic, "--partition", 0, "--offset", 2, "--max-messages", 3,
                  "--property", "print.key=true", "--property", "print.offset=true", label="consume")
    run.ok(res)
    run.expect([line for line in res.out if "\t" in line] == [f"Offset:{i}\tk{i}\tv{i}" for i in range(2, 5)],
               f"consumed {res.out}")


def group_with_lag(run, consumed=10, more=5):
    """A 1-partition topic with `consumed` records read by run.group, then `more` produced."""
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(consumed)])
    res = consume(run, run.topic, "--group", run.group, "--from-beginning", "--max-messages", consumed,
                  compare=False)
    run.ok(res, "group consumer")
    between = time.time()
    if more:
        produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(consumed, consumed + more)])
    return between


def describe_offsets(run, label=None):
    return run.tool(GROUPS, "--describe", "--group", run.group, label=label, compare=label is not None)


@check("groups.describe", GROUPS, "--list; --describe (offsets, lag); --describe --state")
def groups_describe(run):
    group_with_lag(run)
    res = run.tool(GROUPS, "--list", label="list",
                   project=lambda r, s: {"exit": r.rc, "mine": [g for g in r.out if g == run.group]})
    run.expect(run.group in res.out, f"--list: {res.out}")
    res = describe_offsets(run, "describe")
    run.ok(res)
    run.expect(offsets_table(res) == {(run.topic, 0): ("10", "15", "5")}, f"offsets: {res.out}")
    res = run.tool(GROUPS, "--describe", "--group", run.group, "--state", label="state")
    rows = [line.split() for line in res.out if line.startswith(run.group)]
    run.expect(rows and rows[0][-2:] == ["Empty", "0"], f"state: {res.out}")


def reset(run, label, *how, execute=True):
    return run.tool(GROUPS, "--reset-offsets", "--group", run.group, "--topic", run.topic, *how,
                    "--execute" if execute else "--dry-run", label=label)


def new_offset(result):
    rows = [line.split() for line in result.out if line.split()[:1] and not line.startswith("GROUP")]
    return [r[-1] for r in rows if len(r) == 4]


@check("groups.reset_offsets", GROUPS,
       "--reset-offsets --to-earliest/--to-latest/--to-offset/--shift-by/--to-datetime, --dry-run and --execute")
def groups_reset(run):
    between = group_with_lag(run)
    res = reset(run, "to-earliest dry-run", "--to-earliest", execute=False)
    run.expect(new_offset(res) == ["0"], f"dry run: {res.out}")
    res = describe_offsets(run)
    now = offsets_table(res).get((run.topic, 0), ("?",))[0]
    run.expect(now == "10", f"after --dry-run, --describe shows offset {now}, want 10: {res.out}")
    for label, how, want in [
        ("to-earliest", ["--to-earliest"], "0"),
        ("to-latest", ["--to-latest"], "15"),
        ("to-offset", ["--to-offset", "3"], "3"),
        ("shift-by", ["--shift-by", "-2"], "1"),
        ("to-datetime", ["--to-datetime", time.strftime("%Y-%m-%dT%H:%M:%S.000", time.localtime(between + 0.001))],
         "10"),
        ("to-datetime past", ["--to-datetime", "2001-01-01T00:00:00.000"], "0"),
        ("shift-by past the end", ["--shift-by", "100"], "15"),
    ]:
        res = reset(run, label, *how)
        run.ok(res)
        run.expect(new_offset(res) == [want], f"{label}: printed {res.out}")
        now = offsets_table(describe_offsets(run)).get((run.topic, 0), ("?",))[0]
        run.expect(now == want, f"{label}: --describe shows offset {now}, want {want}")


@check("groups.active", GROUPS, "--describe --members --verbose and --state of an active group; reset refused")
def groups_active(run):
    group_with_lag(run, more=0)
    consumer = run.background(CONSUMER, "--topic", run.topic, "--group", run.group)
    try:
        def stable():
            r = run.tool(GROUPS, "--describe", "--group", run.group, "--state", compare=False)
            return any(line.startswith(run.group) and " Stable " in line for line in r.out) and r

        res = wait_for(stable, 60)
        run.expect(res, "the group never became Stable with one console consumer")
        if res:
            run.record("state", res)
        res = run.tool(GROUPS, "--describe", "--group", run.group, "--members", "--verbose", label="members")
        rows = [line.split() for line in res.out if line.startswith(run.group)]
        run.expect(len(rows) == 1 and rows[0][4] == "1" and f"{run.topic}:0" in rows[0],
                   f"--members --verbose: {res.out}")
        res = reset(run, "reset refused", "--to-earliest")
        run.expect(res.rc != 0 or any("inactive" in line for line in res.out + res.err),
                   f"reset of an active group was not refused: {res.out}")
        run.expect(offsets_table(describe_offsets(run)).get((run.topic, 0), ("?",))[0] == "10",
                   "the refused reset changed the offset")
        res = run.tool(GROUPS, "--delete", "--group", run.group, label="delete refused")
        run.expect(res.rc != 0 or "GroupNotEmptyException" in res.errors, f"delete of an active group: {res.out}")
    finally:
        consumer.stop()


@check("groups.delete", GROUPS, "--delete-offsets; --delete; --describe of a missing group")
def groups_delete(run):
    group_with_lag(run, more=0)
    res = run.tool(GROUPS, "--delete-offsets", "--group", run.group, "--topic", run.topic, label="delete-offsets")
    run.ok(res)
    run.expect(any(re.match(rf"{re.escape(run.topic)}\s+0\s+Successful", line) for line in res.out),
               f"delete-offsets: {res.out}")
    run.expect(offsets_table(describe_offsets(run, "describe after delete-offsets")) == {},
               "offsets still listed after --delete-offsets")
    res = run.tool(GROUPS, "--delete", "--group", run.group, label="delete")
    run.ok(res)
    run.expect(any("successful" in line for line in res.out), f"delete: {res.out}")
    res = run.tool(GROUPS, "--list", compare=False)
    run.expect(run.group not in res.out, f"deleted group still listed: {res.out}")
    res = run.tool(GROUPS, "--delete", "--group", run.group, label="delete missing")
    run.expect("GroupIdNotFoundException" in res.errors, f"delete of a missing group: {res.text}")
    res = run.tool(GROUPS, "--describe", "--group", run.group, label="describe missing")
    run.expect("GroupIdNotFoundException" in res.errors or any("does not exist" in line for line in res.out + res.err),
               f"describe missing: {res.text}")
