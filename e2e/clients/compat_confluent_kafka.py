#!/usr/bin/env python3
"""confluent-kafka (librdkafka) in the compatibility scenario (compat_scenario.py).

Run by e2e/clients/run_compat.py in the kafka3 venv. librdkafka carries all four
codecs itself; a static member's close() keeps its membership (no LeaveGroup) and a
fenced static member gets a fatal FENCED_INSTANCE_ID error.
"""

import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import compat_scenario as sc

TIMEOUT = 30  # seconds for one produce/admin/read operation


def security_config(security):
    """librdkafka settings for the security phase's listener (none otherwise)."""
    if security is None:
        return {}
    if security.kind == "sasl":
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": security.user,
            "sasl.password": security.password,
            "ssl.ca.location": security.ca,
        }
    return {
        "security.protocol": "SSL",
        "ssl.ca.location": security.ca,
        "ssl.certificate.location": security.cert,
        "ssl.key.location": security.key,
    }


def is_fenced(err):
    # librdkafka raises FENCED_INSTANCE_ID as a fatal error, which consume() reports
    # with the generic _FATAL code and the reason only in the text.
    fatal = err.fatal() or err.code() == KafkaError._FATAL
    return err.code() == KafkaError.FENCED_INSTANCE_ID or (fatal and "fenced" in err.str().lower())


class Member(sc.ThreadMember):
    """A subscribed Consumer; librdkafka runs rebalance callbacks inside consume()."""

    def __init__(self, bootstrap, topic, group, label, instance_id, offset_reset, paused, debug):
        self.conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": label,
            "enable.auto.commit": False,
            # "error": no committed offset is an error instead of a silent reset.
            "auto.offset.reset": "error" if offset_reset == "none" else offset_reset,
            "session.timeout.ms": sc.SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": sc.HEARTBEAT_INTERVAL_MS,
            "error_cb": lambda err: self._error(f"error_cb: {err}", fenced=is_fenced(err)),
        }
        if instance_id:
            self.conf["group.instance.id"] = instance_id
        if debug:
            self.conf["debug"] = "cgrp,protocol"
        self.topic = topic
        super().__init__(label, paused)

    def _open(self):
        self.consumer = Consumer(self.conf)
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=lambda _, parts: self._revoked([p.partition for p in parts]),
            on_lost=lambda _, parts: self._revoked([p.partition for p in parts]),
        )

    def _on_assign(self, consumer, parts):
        consumer.assign(parts)  # explicitly, so _assigned may pause them
        self._assigned([p.partition for p in parts])

    def _tps(self, partitions):
        return [TopicPartition(self.topic, p) for p in partitions]

    def _poll(self):
        records = []
        for msg in self.consumer.consume(num_messages=500, timeout=0.1):
            err = msg.error()
            if err is not None:
                self._error(f"consume: {err}", fenced=is_fenced(err))
            else:
                records.append(sc.Record(msg.partition(), msg.offset(), msg.key(), msg.value()))
        return records

    def _pause(self, partitions):
        self.consumer.pause(self._tps(partitions))

    def _resume(self, partitions):
        self.consumer.resume(self._tps(partitions))

    def _commit(self):
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:  # nothing consumed: nothing to commit
                raise

    def _close(self):
        self.consumer.close()


class Adapter:
    """confluent-kafka's Producer, Consumer and AdminClient for the scenario."""

    name = "confluent-kafka"
    version = f"confluent-kafka {confluent_kafka.__version__} / librdkafka {confluent_kafka.libversion()[0]}"

    def __init__(self, bootstrap, topic, debug, security=None):
        self.bootstrap, self.topic, self.debug = bootstrap, topic, debug
        # Connection settings of every client made here: bootstrap plus, in the security
        # phase, the listener's protocol and credentials.
        self.connection = {"bootstrap.servers": bootstrap, **security_config(security)}
        self.admin = AdminClient(dict(self.connection))

    def produce(self, topic, messages, idempotent=False, compression=None):
        conf = {
            **self.connection,
            "acks": "all",
            "linger.ms": 20,
            "message.timeout.ms": TIMEOUT * 1000,
            "error_cb": lambda e: sc.log(f"producer error_cb: {e}"),
        }
        if idempotent:
            conf["enable.idempotence"] = True
        if compression:
            conf["compression.type"] = compression
        acked = [None] * len(messages)
        failures = []

        def on_delivery(index):
            def report(err, msg):
                if err is not None:
                    failures.append(f"#{index}: {err}")
                else:
                    acked[index] = sc.Record(msg.partition(), msg.offset(), msg.key(), msg.value())

            return report

        producer = Producer(conf)
        for i, (key, value) in enumerate(messages):
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery(i))
            producer.poll(0)
        left = producer.flush(TIMEOUT)
        if left or failures:
            raise sc.CheckFailed(
                f"produce to {topic}: {left} undelivered after {TIMEOUT}s, {len(failures)} failed {failures[:3]}"
            )
        return acked

    def read_topic(self, topic):
        parts = sorted(self.describe_topic(topic))
        consumer = Consumer(
            {
                **self.connection,
                "group.id": "compat-reader-unused",  # required by the constructor; assign() only, no commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1] for p in parts}
            consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
            records, position = [], dict.fromkeys(parts, 0)
            deadline = time.monotonic() + TIMEOUT
            while any(position[p] < ends[p] for p in parts):
                if time.monotonic() > deadline:
                    raise sc.CheckFailed(
                        f"read {topic}: positions {position} short of the ends {ends} after {TIMEOUT}s"
                    )
                for msg in consumer.consume(num_messages=500, timeout=0.2):
                    err = msg.error()
                    if err is None:
                        records.append(sc.Record(msg.partition(), msg.offset(), msg.key(), msg.value()))
                        position[msg.partition()] = msg.offset() + 1
                    elif err.code() != KafkaError._PARTITION_EOF:
                        raise sc.CheckFailed(f"read {topic}: {err}")
            return records
        finally:
            consumer.close()

    def create_topic(self, name, partitions):
        new = NewTopic(name, num_partitions=partitions, replication_factor=1)
        futures = self.admin.create_topics([new], request_timeout=TIMEOUT)
        futures[name].result(timeout=TIMEOUT)

    def list_topics(self):
        return set(self.admin.list_topics(timeout=TIMEOUT).topics)

    def describe_topic(self, name):
        t = self.admin.list_topics(topic=name, timeout=TIMEOUT).topics.get(name)
        if t is None or t.error is not None:
            return {}
        return {pid: p.leader if p.error is None else -1 for pid, p in t.partitions.items()}

    def missing_codecs(self):
        return {}  # librdkafka is built with gzip, snappy, lz4 and zstd

    def committed(self, group, partitions):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            result = {}
            for tp in consumer.committed([TopicPartition(self.topic, p) for p in partitions], timeout=TIMEOUT):
                if tp.error is not None:
                    raise sc.CheckFailed(f"committed(): partition {tp.partition}: {tp.error}")
                result[tp.partition] = tp.offset if tp.offset >= 0 else None
            return result
        finally:
            consumer.close()

    def member(self, group, label, instance_id=None, offset_reset="earliest", paused=True):
        return Member(self.bootstrap, self.topic, group, label, instance_id, offset_reset, paused, self.debug)

    def close(self):
        pass


def main():
    args = sc.parse_args(__doc__)
    sc.main(
        args,
        Adapter.name,
        Adapter.version,
        lambda security=None: Adapter(
            security.bootstrap if security else args.bootstrap, args.topic, args.debug, security
        ),
    )


if __name__ == "__main__":
    main()
