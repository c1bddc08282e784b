"""kafka-dump-log on each side's own segment files, the perf tests, the verifiable producer/consumer,
and wrong commands that must fail the same way on both."""

import glob
import json
import os
import re

from .checks_clients import produce
from .framework import check, exit_and_errors
from .sides import wait_for

TOPICS = "kafka-topics"


def batches(result):
    return [line for line in result.out if line.startswith("baseOffset:")]


def records(result):
    return [line for line in result.out if line.startswith("| offset:")]


def dump_projection(result, side):
    keep = re.compile(r"\b(?:CreateTime|crc|position|size|producerId|producerEpoch|baseSequence|lastSequence|"
                      r"sequence|partitionLeaderEpoch): -?\d+")
    return {"exit": result.rc,
            "lines": [keep.sub("<n>", line) for line in result.out if not line.startswith("Dumping ")]}


@check("dump_log", "kafka-dump-log", "--files <segment>.log [--deep-iteration --print-data-log]")
def dump_log(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, compare=False))
    # Three producer runs: three batches, of 1, 2 and 3 records.
    sent = []
    for n in (1, 2, 3):
        batch = [(f"k{len(sent) + i}", f"v{len(sent) + i}") for i in range(n)]
        produce(run, run.topic, batch, )
        sent += batch
    pdir = run.side.partition_dir(run.topic, 0)
    segments = sorted(glob.glob(os.path.join(pdir, "*.log")))
    run.expect(len(segments) == 1, f"segment files in {pdir}: {segments}")
    if not segments:
        return
    # The log is flushed on its own schedule; wait for all six records to be in the file.
    full = wait_for(lambda: (lambda r: len(records(r)) == 6 and r)(run.tool(
        "kafka-dump-log", "--files", segments[0], "--deep-iteration", "--print-data-log", bootstrap=None,
        compare=False)), 30)
    run.expect(full, "the segment file never showed all six records")
    res = run.tool("kafka-dump-log", "--files", segments[0], bootstrap=None, label="batches", project=dump_projection)
    run.ok(res)
    run.expect([re.search(r"count: (\d+)", b).group(1) for b in batches(res)] == ["1", "2", "3"],
               f"batches: {batches(res)}")
    run.expect(all("isvalid: true" in b for b in batches(res)), f"invalid batch: {batches(res)}")
    res = run.tool("kafka-dump-log", "--files", segments[0], "--deep-iteration", "--print-data-log", bootstrap=None,
                   label="records", project=dump_projection)
    got = [re.search(r"offset: (\d+) .* key: (\S+) payload: (\S+)", r).groups() for r in records(res)]
    run.expect(got == [(str(i), k, v) for i, (k, v) in enumerate(sent)], f"records: {records(res)}")


def perf_summary(result, side):
    return {"exit": result.rc, "summary": [re.sub(r"[\d.]+", "<n>", line) for line in result.out[-1:]]}


@check("perf", "kafka-producer-perf-test", "--num-records --record-size --throughput -1; kafka-consumer-perf-test")
def perf(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 3, compare=False))
    n = 30000
    res = run.tool("kafka-producer-perf-test", "--topic", run.topic, "--num-records", n, "--record-size", 100,
                   "--throughput", -1, "--producer-props", f"bootstrap.servers={run.side.bootstrap}", "acks=all",
                   bootstrap=None, label="producer", project=perf_summary, timeout=120)
    run.ok(res)
    last = res.out[-1] if res.out else ""
    run.expect(re.match(rf"{n} records sent, [\d.]+ records/sec .* ms 99\.9th\.", last), f"summary: {last}")
    res = run.tool("kafka-consumer-perf-test", "--topic", run.topic, "--messages", n, "--timeout", 30000,
                   label="consumer", timeout=120,
                   project=lambda r, s: {"exit": r.rc, "header": r.out[:1], "columns": [len(x.split(",")) for x in r.out]})
    run.ok(res)
    row = res.out[-1].split(",") if res.out else []
    run.expect(len(row) >= 6 and row[4].strip() == str(n), f"consumer perf summary: {res.out}")


@check("verifiable", "kafka-verifiable-producer", "--max-messages --acks -1; kafka-verifiable-consumer")
def verifiable(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 2, compare=False))
    n = 200
    res = run.tool("kafka-verifiable-producer", "--topic", run.topic, "--max-messages", n, "--acks", "-1",
                   label="producer", project=event_names)
    run.ok(res)
    acked = set()
    for e in events(res):
        if e.get("name") == "producer_send_success":
            acked.add((e["partition"], e["offset"], e["value"]))
    run.expect(len(acked) == n, f"acknowledged {len(acked)} of {n}")
    res = run.tool("kafka-verifiable-consumer", "--topic", run.topic, "--group-id", run.group, "--max-messages", n,
                   "--verbose", "--reset-policy", "earliest", label="consumer", project=event_names, timeout=90)
    run.ok(res)
    consumed = {(e["partition"], e["offset"], e["value"]) for e in events(res) if e.get("name") == "record_data"}
    run.expect(consumed == acked, f"consumed != acknowledged: {len(consumed)} vs {len(acked)}; "
                                  f"missing {sorted(acked - consumed)[:5]}")
    committed = [e for e in events(res) if e.get("name") == "offsets_committed"]
    run.expect(committed and all(e.get("success") for e in committed), f"commits: {committed[:3]}")


def events(result):
    out = []
    for line in result.out:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def event_names(result, side):
    """The kinds of events in order of first appearance, and the exit code."""
    names = []
    for e in events(result):
        if e.get("name") not in names:
            names.append(e.get("name"))
    return {"exit": result.rc, "events": names}


@check("bad_input", TOPICS, "wrong commands (missing topic, unknown config, bad partition)")
def bad_input(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, compare=False))
    cases = [
        ("alter missing topic", TOPICS, ["--alter", "--topic", "cli-no-such", "--partitions", 3]),
        ("create bad config", TOPICS, ["--create", "--topic", run.topic + "-x", "--config", "no.such.key=1"]),
        ("create bad config value", TOPICS, ["--create", "--topic", run.topic + "-y", "--config", "cleanup.policy=nope"]),
        ("create zero partitions", TOPICS, ["--create", "--topic", run.topic + "-z", "--partitions", 0]),
        ("describe configs missing topic", "kafka-configs",
         ["--entity-type", "topics", "--entity-name", "cli-no-such", "--describe"]),
        ("elect missing partition", "kafka-leader-election",
         ["--election-type", "preferred", "--topic", run.topic, "--partition", 9]),
        ("offsets of missing group", "kafka-consumer-groups", ["--describe", "--group", "cli-no-such-group", "--offsets"]),
    ]
    for label, tool, args in cases:
        res = run.tool(tool, *args, label=label, project=exit_and_errors)
        run.expect(res.rc is not None, f"{label}: hung")
