"""kafka-configs, kafka-delete-records, kafka-get-offsets, kafka-log-dirs, kafka-broker-api-versions,
kafka-metadata-quorum, kafka-features, kafka-acls and kafka-transactions."""

import json
import re

from . import normalise
from .checks_clients import produce
from .framework import check, exit_and_errors
from .sides import TRIPLE

TOPICS, CONFIGS = "kafka-topics", "kafka-configs"


def dynamic_configs(result):
    """{key: value} of the `key=value sensitive=... synonyms=...` lines of --describe."""
    out = {}
    for line in result.out:
        m = re.match(r"\s+([\w.]+)=(\S*) sensitive=", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def keys_only(result, side):
    return {"exit": result.rc, "keys": sorted(dynamic_configs(result)), "errors": result.errors}


@check("configs.topic", CONFIGS, "--entity-type topics --describe, --alter --add-config/--delete-config")
def configs_topic(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--config", "retention.ms=100000", compare=False))
    args = ["--entity-type", "topics", "--entity-name", run.topic]
    res = run.tool(CONFIGS, *args, "--describe", label="describe")
    run.expect(dynamic_configs(res) == {"retention.ms": "100000"}, f"describe: {res.out}")
    run.ok(run.tool(CONFIGS, *args, "--alter", "--add-config", "cleanup.policy=compact,segment.ms=3600000",
                    label="add"))
    run.ok(run.tool(CONFIGS, *args, "--alter", "--delete-config", "retention.ms", label="delete"))
    res = run.tool(CONFIGS, *args, "--describe", label="describe after", project=keys_only)
    run.expect(dynamic_configs(res) == {"cleanup.policy": "compact", "segment.ms": "3600000"}, f"after: {res.out}")
    res = run.tool(CONFIGS, *args, "--describe", "--all", label="describe --all", project=keys_only)
    run.expect(len(dynamic_configs(res)) > 20 and dynamic_configs(res).get("cleanup.policy") == "compact",
               f"--all: {res.out[:5]}")
    res = run.tool(CONFIGS, *args, "--alter", "--add-config", "no.such.config=1", label="unknown key")
    run.fails_with(res, "InvalidConfigurationException", "InvalidRequestException")
    res = run.tool(CONFIGS, *args, "--alter", "--add-config", "retention.ms=abc", label="bad value")
    run.fails_with(res, "InvalidConfigurationException", "InvalidRequestException", "ConfigException")


@check("configs.broker", CONFIGS, "--entity-type brokers --entity-name <id>: --describe, --alter add/delete")
def configs_broker(run):
    args = ["--entity-type", "brokers", "--entity-name", run.side.node_id(0)]
    res = run.tool(CONFIGS, *args, "--describe", label="describe")
    run.ok(res)
    run.ok(run.tool(CONFIGS, *args, "--alter", "--add-config", "log.cleaner.threads=2,message.max.bytes=2000000",
                    label="add"))
    res = run.tool(CONFIGS, *args, "--describe", label="describe after")
    got = dynamic_configs(res)
    run.expect(got.get("log.cleaner.threads") == "2" and got.get("message.max.bytes") == "2000000",
               f"after add: {res.out}")
    run.ok(run.tool(CONFIGS, *args, "--alter", "--delete-config", "log.cleaner.threads,message.max.bytes",
                    label="delete"))
    res = run.tool(CONFIGS, *args, "--describe", label="describe after delete")
    run.expect("message.max.bytes" not in dynamic_configs(res), f"after delete: {res.out}")


@check("configs.broker_default", CONFIGS, "--entity-type brokers --entity-default: --describe, --alter")
def configs_broker_default(run):
    args = ["--entity-type", "brokers", "--entity-default"]
    run.ok(run.tool(CONFIGS, *args, "--alter", "--add-config", "log.retention.ms=86400000", label="add"))
    res = run.tool(CONFIGS, *args, "--describe", label="describe")
    run.expect(dynamic_configs(res).get("log.retention.ms") == "86400000", f"default after add: {res.out}")
    res = run.tool(CONFIGS, "--entity-type", "brokers", "--entity-name", run.side.node_id(0), "--describe", "--all",
                   label="broker sees default", compare=False)
    run.expect(any(line.strip().startswith("log.retention.ms=86400000") for line in res.out),
               "the broker does not show the cluster default")
    run.ok(run.tool(CONFIGS, *args, "--alter", "--delete-config", "log.retention.ms", label="delete"))
    res = run.tool(CONFIGS, *args, "--describe", label="describe after delete")
    run.expect("log.retention.ms" not in dynamic_configs(res), f"after delete: {res.out}")


@check("configs.broker_read_only", CONFIGS, "--alter of a broker key that cannot change at run time")
def configs_read_only(run):
    res = run.tool(CONFIGS, "--entity-type", "brokers", "--entity-name", run.side.node_id(0), "--alter",
                   "--add-config", "log.dirs=/tmp/elsewhere", label="log.dirs")
    run.fails_with(res, "InvalidRequestException", "InvalidConfigurationException")


@check("delete_records", "kafka-delete-records", "--offset-json-file")
def delete_records(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(5)])
    spec = run.write("delete.json", json.dumps(
        {"partitions": [{"topic": run.topic, "partition": 0, "offset": 3}], "version": 1}))
    res = run.tool("kafka-delete-records", "--offset-json-file", spec, label="delete")
    run.ok(res)
    run.expect(any(f"partition: {run.topic}-0\tlow_watermark: 3" == line for line in res.out), f"delete: {res.out}")
    res = run.tool("kafka-get-offsets", "--topic", run.topic, "--time", "-2", label="earliest after")
    run.expect(res.out == [f"{run.topic}:0:3"], f"earliest after delete: {res.out}")
    spec = run.write("beyond.json", json.dumps(
        {"partitions": [{"topic": run.topic, "partition": 0, "offset": 50}], "version": 1}))
    res = run.tool("kafka-delete-records", "--offset-json-file", spec, label="beyond the end")
    run.expect("OffsetOutOfRangeException" in res.errors, f"beyond the end: {res.text}")


@check("delete_records.compacted", "kafka-delete-records", "on a compacted topic (refused)")
def delete_records_compacted(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, "--config",
                    "cleanup.policy=compact", compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(3)])
    spec = run.write("delete.json", json.dumps(
        {"partitions": [{"topic": run.topic, "partition": 0, "offset": 1}], "version": 1}))
    res = run.tool("kafka-delete-records", "--offset-json-file", spec, label="delete")
    run.expect("PolicyViolationException" in res.errors, f"delete on a compacted topic: {res.text}")
    res = run.tool("kafka-get-offsets", "--topic", run.topic, "--time", "-2", label="earliest after")
    run.expect(res.out == [f"{run.topic}:0:0"], f"earliest after the refused delete: {res.out}")


@check("get_offsets", "kafka-get-offsets", "--topic, --time -1/-2/-3/<ms>, --partitions")
def get_offsets(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 2, compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(8)])
    latest = run.tool("kafka-get-offsets", "--topic", run.topic, label="latest")
    ends = {line.rsplit(":", 2)[1]: int(line.rsplit(":", 1)[1]) for line in latest.out if line.count(":") >= 2}
    run.expect(sum(ends.values()) == 8 and set(ends) == {"0", "1"}, f"latest: {latest.out}")
    res = run.tool("kafka-get-offsets", "--topic", run.topic, "--time", "-2", label="earliest")
    run.expect(res.out == [f"{run.topic}:0:0", f"{run.topic}:1:0"], f"earliest: {res.out}")
    # One more record, produced after the others: the latest timestamp of its partition.
    produce(run, run.topic, [("last", "x")])
    after = run.tool("kafka-get-offsets", "--topic", run.topic, compare=False)
    grown = [line for line in after.out if line not in latest.out]
    run.expect(len(grown) == 1, f"the last record did not land in one partition: {after.out}")
    if grown:
        _, p, end = grown[0].rsplit(":", 2)
        res = run.tool("kafka-get-offsets", "--topic", run.topic, "--partitions", p, "--time", "-3",
                       label="max timestamp")
        run.expect(res.out == [f"{run.topic}:{p}:{int(end) - 1}"], f"max timestamp of partition {p}: {res.out}")
    res = run.tool("kafka-get-offsets", "--topic", run.topic, "--time", "1000", label="by time (all later)")
    run.expect(res.out == [f"{run.topic}:0:0", f"{run.topic}:1:0"], f"by time: {res.out}")
    res = run.tool("kafka-get-offsets", "--topic", run.topic, "--partitions", "1", label="one partition")
    run.expect(res.out == [line for line in after.out if line.startswith(f"{run.topic}:1:")], f"--partitions 1: {res.out}")
    res = run.tool("kafka-get-offsets", "--topic", "cli-no-such-topic", label="missing topic")
    run.expect(res.out == [] or res.rc != 0, f"missing topic: {res.out}")


def log_dirs_json(result):
    for line in result.out:
        if line.startswith("{"):
            return json.loads(line)
    return None


def log_dirs_projection(result, side):
    doc = log_dirs_json(result)
    if doc is None:
        return {"exit": result.rc, "errors": result.errors}
    # Sizes differ with the records' own encoding (timestamp deltas are varints): compare "not empty".
    parts = sorted((p["partition"], p["offsetLag"], p["isFuture"], p["size"] > 0)
                   for b in doc["brokers"] for d in b["logDirs"] for p in d["partitions"])
    errors = [d["error"] for b in doc["brokers"] for d in b["logDirs"]]
    return {"exit": result.rc, "version": doc["version"], "brokers": len(doc["brokers"]), "partitions": parts,
            "errors": errors}


@check("log_dirs", "kafka-log-dirs", "--describe --topic-list (sizes, offset lag)")
def log_dirs(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 2, compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(4)])
    res = run.tool("kafka-log-dirs", "--describe", "--topic-list", run.topic, label="describe",
                   project=log_dirs_projection)
    run.ok(res)
    doc = log_dirs_json(res) or {"brokers": []}
    dirs = [d for b in doc["brokers"] for d in b["logDirs"]]
    run.expect(len(dirs) == 1 and dirs[0]["logDir"] == run.side.data_dir(0) and dirs[0]["error"] is None,
               f"log dirs: {dirs}")
    parts = {p["partition"]: p for d in dirs for p in d["partitions"]}
    run.expect(set(parts) == {f"{run.topic}-0", f"{run.topic}-1"}, f"partitions: {sorted(parts)}")
    run.expect(sum(p["size"] for p in parts.values()) > 0 and all(p["offsetLag"] == 0 for p in parts.values()),
               f"sizes/lag: {parts}")


@check("log_dirs.replicated", "kafka-log-dirs", "--describe --broker-list on three brokers", shape=TRIPLE)
def log_dirs_triple(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--partitions", 1, "--replication-factor", 3,
                    compare=False))
    produce(run, run.topic, [(f"k{i}", f"v{i}") for i in range(4)])
    ids = ",".join(str(i) for i in run.side.node_ids())
    res = run.tool("kafka-log-dirs", "--describe", "--topic-list", run.topic, "--broker-list", ids,
                   label="describe", project=lambda r, s: {k: v for k, v in log_dirs_projection(r, s).items()
                                                           if k != "partitions"})
    run.ok(res)
    doc = log_dirs_json(res) or {"brokers": []}
    run.expect(sorted(b["broker"] for b in doc["brokers"]) == run.side.node_ids(), f"brokers: {doc}")


def api_names(result, side):
    """The API names each side lists, and whether the tool calls each usable."""
    apis = {}
    for line in result.out:
        m = re.match(r"\s+(\w+)\(\d+\): (.*?),?$", line)
        if m:
            apis[m.group(1)] = "UNSUPPORTED" not in m.group(2)
    return {"exit": result.rc, "usable": sorted(a for a, ok in apis.items() if ok)}


@check("broker_api_versions", "kafka-broker-api-versions", "(all APIs of every broker)")
def broker_api_versions(run):
    res = run.tool("kafka-broker-api-versions", label="versions", project=api_names)
    run.ok(res)
    usable = api_names(res, run.side)["usable"]
    for api in ("Produce", "Fetch", "Metadata", "ApiVersions", "CreateTopics", "JoinGroup", "DescribeConfigs"):
        run.expect(api in usable, f"{api} not usable: {res.out[:8]}")
    run.expect(sum(1 for line in res.out if re.search(r"\(id: \d+ rack: ", line)) == 1, f"brokers: {res.out[:2]}")


def quorum_status(result, side):
    keys = [line.split(":", 1)[0].strip() for line in result.out if ":" in line]
    return {"exit": result.rc, "keys": keys, "errors": result.errors}


@check("metadata_quorum", "kafka-metadata-quorum", "describe --status; describe --replication", shape=TRIPLE)
def metadata_quorum(run):
    res = run.tool("kafka-metadata-quorum", "describe", "--status", label="status", project=quorum_status)
    run.ok(res)
    voters = next((line for line in res.out if line.startswith("CurrentVoters:")), "")
    run.expect(sorted(int(x) for x in re.findall(r'"id": (\d+)', voters)) == run.side.node_ids(), f"voters: {voters}")
    res = run.tool("kafka-metadata-quorum", "describe", "--replication", label="replication",
                   project=lambda r, s: {"exit": r.rc, "rows": len(r.out), "errors": r.errors})
    run.ok(res)
    run.expect(sum(1 for line in res.out if re.search(r"\b(Leader|Follower)\b", line)) == 3,
               f"replication: {res.out}")


@check("features", "kafka-features", "describe")
def features(run):
    res = run.tool("kafka-features", "describe", label="describe",
                   project=lambda r, s: {"exit": r.rc, "features": sorted(
                       re.findall(r"Feature: ([\w.]+)", r.text))})
    run.ok(res)
    run.expect(any("metadata.version" in line for line in res.out), f"features: {res.out}")


def table_rows(result, side):
    """Exit code, errors and the number of rows under the tool's header line."""
    return {"exit": result.rc, "errors": result.errors, "rows": max(len(result.out) - 1, 0)}


@check("acls", "kafka-acls", "--list; --add")
def acls(run):
    # Neither side runs an authorizer: both must refuse as Kafka does without one
    # (SECURITY_DISABLED), never hang or drop the connection.
    for label, args in (("list", ("--list",)),
                        ("add", ("--add", "--allow-principal", "User:alice", "--operation", "Read",
                                 "--topic", run.topic))):
        res = run.tool("kafka-acls", *args, label=label, project=exit_and_errors)
        run.expect(res.rc not in (0, None) and "SecurityDisabledException" in res.errors,
                   f"kafka-acls {label}: expected SecurityDisabledException, got exit {res.rc}: {res.errors}")


@check("transactions", "kafka-transactions", "list; describe-producers; describe")
def transactions(run):
    res = run.tool("kafka-transactions", "list", label="list", project=table_rows)
    run.ok(res)
    run.expect(res.out and res.out[0].startswith("TransactionalId"), f"list: no header: {res.out}")
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, compare=False))
    # The console producer is idempotent (the Java client's default): one producer id.
    produce(run, run.topic, [("k", "v1"), ("k", "v2")])
    res = run.tool("kafka-transactions", "describe-producers", "--topic", run.topic, "--partition", 0,
                   label="describe-producers", project=table_rows)
    run.ok(res)
    run.expect(len(res.out) == 2 and re.match(r"\d+\s+0\s+-1\s+1\s", res.out[1] or ""),
               f"describe-producers: expected one producer at epoch 0, last sequence 1: {res.out}")
    res = run.tool("kafka-transactions", "describe", "--transactional-id", "no-such-id",
                   label="describe unknown id", project=lambda r, s: {"exit": r.rc})
    run.expect(res.rc not in (0, None), f"describe of an unknown transactional id exited {res.rc}")


def keys_and_sources(result, side):
    """For `--all`: each listed key with the sources of its synonyms (values legitimately
    differ: paths, ports, Strom's own defaults)."""
    out = []
    for line in result.out:
        m = re.match(r"\s+([a-z0-9.\-]+)=.*synonyms=\{(.*)\}$", line)
        if m:
            out.append(f"{m.group(1)} {re.findall(r'([A-Z_]+_CONFIG):', m.group(2))}")
    return {"exit": result.rc, "keys": out, "errors": result.errors}


def dynamic_keys_and_sources(result, side):
    """For a broker's `--all`: only what is set dynamically (Strom reads fewer static keys)."""
    shown = keys_and_sources(result, side)
    shown["keys"] = [k for k in shown["keys"] if "DYNAMIC" in k]
    return shown


@check("configs.matrix", CONFIGS, "25 kafka-configs commands: broker, default, topic and group configs, accepted and refused")
def configs_matrix(run):
    broker = ["--entity-type", "brokers", "--entity-name", run.side.node_id(0)]
    default = ["--entity-type", "brokers", "--entity-default"]
    topic = ["--entity-type", "topics", "--entity-name", run.topic]
    group = ["--entity-type", "groups", "--entity-name", run.group]
    cases = [
        ("refuse log.dirs", CONFIGS, [*broker, "--alter", "--add-config", "log.dirs=/x"], None),
        ("refuse node.id at default", CONFIGS, [*default, "--alter", "--add-config", "node.id=5"], None),
        ("bad LONG", CONFIGS, [*broker, "--alter", "--add-config", "log.retention.ms=abc"], None),
        ("unknown broker key accepted", CONFIGS, [*broker, "--alter", "--add-config", "no.such.key=1"], None),
        ("per-broker throttle and cleaner", CONFIGS,
         [*broker, "--alter", "--add-config", "leader.replication.throttled.rate=1000,log.cleaner.threads=2"], None),
        # Kafka 4.4 (with ELR) already holds min.insync.replicas=1 as a cluster default;
        # setting it on both sides compares the rest of the listing.
        ("cluster default", CONFIGS,
         [*default, "--alter", "--add-config", "log.retention.ms=5000000,min.insync.replicas=1"], None),
        ("describe broker", CONFIGS, [*broker, "--describe"], None),
        ("describe brokers", CONFIGS, ["--entity-type", "brokers", "--describe"], None),
        ("describe broker --all", CONFIGS, [*broker, "--describe", "--all"], dynamic_keys_and_sources),
        ("delete-config", CONFIGS, [*broker, "--alter", "--delete-config", "log.cleaner.threads"], None),
        ("delete default", CONFIGS, [*default, "--alter", "--delete-config", "log.retention.ms"], None),
        ("create topic", TOPICS, ["--create", "--topic", run.topic, "--partitions", "2"], None),
        ("topic --all", CONFIGS, [*topic, "--describe", "--all"], keys_and_sources),
        ("topic configs Kafka 4.4 accepts", CONFIGS,
         [*topic, "--alter", "--add-config", "compression.type=zstd,max.compaction.lag.ms=1000,local.retention.ms=5,"
          "remote.storage.enable=false,file.delete.delay.ms=1,message.timestamp.before.max.ms=10"], None),
        ("throttled replicas", CONFIGS,
         [*topic, "--alter", "--add-config",
          "leader.replication.throttled.replicas=[0:1,1:0],follower.replication.throttled.replicas=*"], None),
        ("bad throttled replicas", CONFIGS,
         [*topic, "--alter", "--add-config", "leader.replication.throttled.replicas=[0:1,x]"], None),
        ("ratio above 1", CONFIGS, [*topic, "--alter", "--add-config", "min.cleanable.dirty.ratio=2"], None),
        ("unknown codec", CONFIGS, [*topic, "--alter", "--add-config", "compression.type=brotli"], None),
        ("unknown topic key", CONFIGS, [*topic, "--alter", "--add-config", "foo=1"], None),
        ("describe topic", CONFIGS, [*topic, "--describe"], None),
        ("group --all", CONFIGS, [*group, "--describe", "--all"], None),
        ("group set", CONFIGS, [*group, "--alter", "--add-config", "consumer.session.timeout.ms=50000"], None),
        ("group out of range", CONFIGS, [*group, "--alter", "--add-config", "consumer.session.timeout.ms=5"], None),
        ("group unknown key", CONFIGS, [*group, "--alter", "--add-config", "foo=5"], None),
        ("describe group", CONFIGS, [*group, "--describe"], None),
    ]
    for label, tool, args, project in cases:
        run.tool(tool, *args, label=label, project=project)
    # The outcome that matters most is compared above; two are asserted here too, so a
    # side that refused everything cannot pass by matching the other.
    res = run.tool(CONFIGS, *topic, "--describe", label="final topic", compare=False)
    run.expect(dynamic_configs(res).get("compression.type") == "zstd", f"topic configs not kept: {res.out}")
    res = run.tool(CONFIGS, *group, "--describe", label="final group", compare=False)
    run.expect(dynamic_configs(res).get("consumer.session.timeout.ms") == "50000", f"group config not kept: {res.out}")


def config_blocks(result, side, only=None):
    """{`Dynamic configs for ... are:` header: its sorted keys}, normalised; with `only`,
    just the headers naming one of those entities (the sides are shared by every check, so
    other checks' topics and groups are listed too)."""
    blocks, header = {}, None
    for raw in result.out:
        m = re.match(r"\s+([\w.]+)=", raw)
        if m:
            if header is not None:
                blocks[header].append(m.group(1))
        elif raw.strip():
            named = only is None or any(re.search(rf"\b{re.escape(o)}\b", raw) for o in only)
            header = normalise.node_ids(normalise.line(raw, side), side) if named else None
            if header is not None:
                blocks[header] = []
    return {h: sorted(keys) for h, keys in blocks.items()}


@check("configs.list_resources", CONFIGS,
       "--describe without --entity-name: groups (one known only by its configs), topics, brokers, client-metrics")
def configs_list_resources(run):
    run.ok(run.tool(TOPICS, "--create", "--topic", run.topic, "--config", "retention.ms=100000", compare=False))
    group = ["--entity-type", "groups", "--entity-name", run.group]
    run.ok(run.tool(CONFIGS, *group, "--alter", "--add-config", "consumer.session.timeout.ms=50000",
                    label="set group config"))
    mine = [run.group]

    # The tool lists the groups the coordinator knows and those ListConfigResources names:
    # a group with configs and no members is only in the second.
    res = run.tool(CONFIGS, "--entity-type", "groups", "--describe", label="describe groups",
                   project=lambda r, s: {"exit": r.rc, "blocks": config_blocks(r, s, mine), "errors": r.errors})
    run.ok(res)
    run.expect(config_blocks(res, run.side, mine) == {f"Dynamic configs for group {run.group} are:":
                                                      ["consumer.session.timeout.ms"]},
               f"the configured group is not listed: {res.out}")
    res = run.tool(CONFIGS, "--entity-type", "topics", "--describe", label="describe topics",
                   project=lambda r, s: {"exit": r.rc, "blocks": config_blocks(r, s, [run.topic]),
                                         "errors": r.errors})
    run.ok(res)
    run.expect(config_blocks(res, run.side, [run.topic]) == {f"Dynamic configs for topic {run.topic} are:":
                                                             ["retention.ms"]}, f"topics: {res.out}")
    # Which brokers and defaults are listed, not their keys (Kafka 4.4 holds an ELR default).
    res = run.tool(CONFIGS, "--entity-type", "brokers", "--describe", label="describe brokers",
                   project=lambda r, s: {"exit": r.rc, "headers": sorted(config_blocks(r, s)), "errors": r.errors})
    run.ok(res)
    res = run.tool(CONFIGS, "--entity-type", "client-metrics", "--describe", label="describe client-metrics")
    run.ok(res)
    run.ok(run.tool(CONFIGS, *group, "--alter", "--delete-config", "consumer.session.timeout.ms",
                    label="delete group config"))
    res = run.tool(CONFIGS, "--entity-type", "groups", "--describe", label="describe groups after delete",
                   project=lambda r, s: {"exit": r.rc, "blocks": config_blocks(r, s, mine), "errors": r.errors})
    run.ok(res)
    run.expect(config_blocks(res, run.side, mine) == {}, f"the group is still listed: {res.out}")
