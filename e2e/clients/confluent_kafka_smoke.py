#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a running broker.

- Producer: N keyed messages, every delivery callback must report success,
  on partition 0 with offsets 0..N-1 (a fresh, auto-created topic).
- Consumer: assign() partition 0 from OFFSET_BEGINNING (no subscribe, no
  commits: consumer groups are not needed), read N messages, check content and
  order.
- AdminClient: create a topic with 3 partitions, list_topics shows it.
Exits non-zero on any failure.
"""

import argparse
import sys
import time
import uuid

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 100


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def produce(bs, topic, timeout):
    delivered = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.key(), err))
        else:
            delivered.append((msg.key(), msg.partition(), msg.offset()))

    p = Producer(
        {
            "bootstrap.servers": bs,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(timeout * 1000),
            "error_cb": lambda e: print(f"producer error_cb: {e}", flush=True),
        }
    )
    for i in range(N):
        p.produce(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
        p.poll(0)
    remaining = p.flush(timeout)
    if remaining:
        fail(f"producer flush left {remaining} messages undelivered after {timeout}s")
    if errors:
        fail(f"{len(errors)} delivery failures, first: key={errors[0][0]!r} error={errors[0][1]}")
    if len(delivered) != N:
        fail(f"{len(delivered)} delivery reports, expected {N}")
    want = [(f"key-{i}".encode(), 0, i) for i in range(N)]
    if sorted(delivered, key=lambda d: d[2]) != want:
        bad = next(d for d, w in zip(sorted(delivered, key=lambda d: d[2]), want) if d != w)
        fail(f"delivery reports (key, partition, offset) differ from {want[:2]}...: e.g. {bad}")
    print(f"produced {N} messages to {topic} (offsets 0..{N - 1})", flush=True)


def consume(bs, topic, timeout):
    c = Consumer(
        {
            "bootstrap.servers": bs,
            # Required by Consumer's constructor; unused: assign() + no commits.
            "group.id": f"smoke-unused-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "error_cb": lambda e: print(f"consumer error_cb: {e}", flush=True),
        }
    )
    try:
        c.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < N and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    fail(f"consumer fatal error: {err}")
                print(f"consumer error (non-fatal): {err}", flush=True)
                continue
            got.append((msg.key(), msg.value(), msg.partition(), msg.offset()))
    finally:
        c.close()
    want = [(f"key-{i}".encode(), f"value-{i}".encode(), 0, i) for i in range(N)]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        fail(
            f"consumed {len(got)} messages, expected {N}; first difference at #{first}: "
            f"got {got[first] if first < len(got) else None}, want {want[first] if first < len(want) else None}"
        )
    print(f"consumed {N} messages back in order", flush=True)


def admin(bs, produced_topic, timeout):
    a = AdminClient({"bootstrap.servers": bs})
    topic = f"smoke-ck-admin-{uuid.uuid4().hex[:8]}"
    futures = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=timeout)
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as e:
        fail(f"AdminClient.create_topics({topic}, 3 partitions): {e}")
    print(f"created topic {topic} with 3 partitions", flush=True)

    # Metadata can lag creation on a real cluster; allow a short settle window.
    deadline = time.monotonic() + timeout
    while True:
        md = a.list_topics(timeout=timeout)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == 3:
            break
        if time.monotonic() > deadline:
            fail(
                f"list_topics: {topic} "
                + ("missing" if t is None else f"has error={t.error} partitions={sorted(t.partitions)}")
                + f"; topics listed: {sorted(md.topics)}"
            )
        time.sleep(0.2)
    for pid, p in sorted(t.partitions.items()):
        if p.error is not None or p.leader < 0:
            fail(f"list_topics: {topic} partition {pid}: leader={p.leader} error={p.error}")
    if produced_topic not in md.topics:
        fail(f"list_topics does not list the produced topic {produced_topic}: {sorted(md.topics)}")
    print(f"list_topics shows {topic} with partitions {sorted(t.partitions)} and {produced_topic}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--timeout", type=float, default=30, help="per phase, seconds")
    args = ap.parse_args()
    print(f"confluent-kafka {confluent_kafka.version()[0]}, librdkafka {confluent_kafka.libversion()[0]}", flush=True)

    topic = f"smoke-ck-{uuid.uuid4().hex[:8]}"
    produce(args.bootstrap, topic, args.timeout)
    consume(args.bootstrap, topic, args.timeout)
    admin(args.bootstrap, topic, args.timeout)
    print("confluent-kafka smoke: ok")


if __name__ == "__main__":
    main()
