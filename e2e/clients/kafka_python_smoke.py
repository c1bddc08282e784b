#!/usr/bin/env python3
"""kafka-python (2.x or 3.x; the run picks the venv) against a running broker.

- KafkaProducer: N keyed messages, every future's .get() must succeed, on
  partition 0 with offsets 0..N-1 (a fresh, auto-created topic).
- KafkaConsumer with group_id=None: assign() partition 0, seek_to_beginning(),
  poll until N records or a deadline; check content and order.
- KafkaAdminClient: create a topic with 3 partitions; list/describe show it.
The client negotiates API versions itself (no api_version pin), as users run it.
Exits non-zero on any failure.
"""

import argparse
import logging
import sys
import time
import uuid

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

N = 100
MAJOR = int(kafka.__version__.split(".")[0])


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def produce(bs, topic, timeout):
    p = KafkaProducer(
        bootstrap_servers=bs,
        acks="all",
        linger_ms=5,
        max_block_ms=int(timeout * 1000),
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        futures = [
            p.send(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode()) for i in range(N)
        ]
        p.flush(timeout=timeout)
        for i, f in enumerate(futures):
            try:
                md = f.get(timeout=timeout)
            except Exception as e:  # noqa: BLE001 - report any client error
                fail(f"send #{i} failed: {type(e).__name__}: {e}")
            if (md.topic, md.partition, md.offset) != (topic, 0, i):
                fail(f"send #{i}: record metadata {md}, expected partition 0 offset {i}")
    finally:
        p.close(timeout=timeout)
    print(f"produced {N} messages to {topic} (offsets 0..{N - 1})", flush=True)


def consume(bs, topic, timeout):
    c = KafkaConsumer(
        bootstrap_servers=bs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000) + 1000,
    )
    got = []
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while len(got) < N and time.monotonic() < deadline:
            for part, records in c.poll(timeout_ms=500).items():
                for r in records:
                    got.append((r.key, r.value, part.partition, r.offset))
    finally:
        c.close()
    want = [(f"key-{i}".encode(), f"value-{i}".encode(), 0, i) for i in range(N)]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        fail(
            f"consumed {len(got)} records, expected {N}; first difference at #{first}: "
            f"got {got[first] if first < len(got) else None}, want {want[first] if first < len(want) else None}"
        )
    print(f"consumed {N} records back in order", flush=True)


def admin(bs, produced_topic, timeout):
    a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=int(timeout * 1000))
    topic = f"smoke-kp{MAJOR}-admin-{uuid.uuid4().hex[:8]}"
    try:
        if MAJOR >= 3:
            # 3.x raises on a non-zero error code (raise_errors=True).
            resp = a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
            codes = [(t["name"], t["error_code"]) for t in resp["topics"]]
        else:
            from kafka.admin import NewTopic

            resp = a.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
            codes = [(t[0], t[1]) for t in resp.topic_errors]
        if codes != [(topic, 0)]:
            fail(f"create_topics({topic}, 3 partitions): per-topic (name, error_code) = {codes}")
        print(f"created topic {topic} with 3 partitions", flush=True)

        # Metadata can lag creation on a real cluster; allow a short settle window.
        deadline = time.monotonic() + timeout
        while True:
            names = a.list_topics()
            described = [t for t in a.describe_topics([topic]) if t.get("name", t.get("topic")) == topic]
            parts = sorted(
                p.get("partition_index", p.get("partition")) for t in described for p in t["partitions"]
            )
            ok = (
                topic in names
                and len(described) == 1
                and described[0]["error_code"] == 0
                and parts == [0, 1, 2]
            )
            if ok:
                break
            if time.monotonic() > deadline:
                fail(f"list_topics/describe_topics: {topic} in list: {topic in names}; described: {described}")
            time.sleep(0.2)
        for p in described[0]["partitions"]:
            if p["error_code"] != 0 or p.get("leader", p.get("leader_id", -1)) < 0:
                fail(f"describe_topics: {topic} partition {p}")
        if produced_topic not in names:
            fail(f"list_topics does not list the produced topic {produced_topic}: {names}")
        print(f"list_topics shows {topic} (partitions {parts}) and {produced_topic}", flush=True)
    finally:
        a.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--timeout", type=float, default=30, help="per phase, seconds")
    ap.add_argument("--expect-major", type=int, help="fail unless kafka-python has this major version")
    ap.add_argument("--debug", action="store_true", help="kafka-python DEBUG logging")
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    print(f"kafka-python {kafka.__version__}", flush=True)
    if args.expect_major is not None and MAJOR != args.expect_major:
        fail(f"expected kafka-python {args.expect_major}.x, this venv has {kafka.__version__}")

    topic = f"smoke-kp{MAJOR}-{uuid.uuid4().hex[:8]}"
    produce(args.bootstrap, topic, args.timeout)
    consume(args.bootstrap, topic, args.timeout)
    admin(args.bootstrap, topic, args.timeout)
    print(f"kafka-python {kafka.__version__} smoke: ok")


if __name__ == "__main__":
    main()
