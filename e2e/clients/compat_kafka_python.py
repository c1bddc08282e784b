#!/usr/bin/env python3
"""kafka-python (2.x in the kafka2 venv, 3.x in kafka3) in the compatibility scenario.

Run by e2e/clients/run_compat.py (compat_scenario.py has the scenario). The
client negotiates API versions itself, as users run it. snappy, lz4 and zstd
need python-snappy, lz4 and zstandard (pinned in the requirement files). A static
member's close() sends no LeaveGroup. kafka-python only logs a fenced heartbeat,
so a member counts as fenced when the library raised FencedInstanceIdError or a
commit from it is refused with it.
"""

import logging
import ssl
import time

import kafka
import kafka.errors as Errors
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kafka_codec

import compat_scenario as sc

MAJOR = int(kafka.__version__.split(".")[0])
TIMEOUT = 30  # seconds for one produce/admin/read operation
TIMEOUT_MS = TIMEOUT * 1000
# kafka-python 3.0.12 runs JoinGroup/SyncGroup as a task that outlives the poll() that
# started it, and a task that finishes between two polls is thrown away and a new
# JoinGroup sent (join_group_async only reuses a task still in flight). For a static
# leader that second join is a real rebalance, on Kafka as on Strom. A poll long enough
# for a whole join and sync keeps the task awaited; 2.x joins inside one poll anyway.
POLL_TIMEOUT_MS = 1000 if MAJOR >= 3 else 100
CODEC_PACKAGES = {
    "gzip": (kafka_codec.has_gzip, "gzip (stdlib)"),
    "snappy": (kafka_codec.has_snappy, "python-snappy"),
    "lz4": (kafka_codec.has_lz4, "lz4"),
    "zstd": (kafka_codec.has_zstd, "zstandard"),
}


def security_options(security):
    """kafka-python options for the security phase's listener (none otherwise)."""
    if security is None:
        return {}
    if security.kind == "sasl":
        return dict(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=security.user,
            sasl_plain_password=security.password,
            ssl_cafile=security.ca,
        )
    if MAJOR < 3:
        # kafka-python 2.x closes a connection that turns readable while no request is in
        # flight ("Socket EVENT_READ without in-flight-requests"). Over TLS 1.3 the broker's
        # NewSessionTicket arrives just after the handshake (rustls sends tickets as
        # OpenSSL and the JDK do), so a connection that is idle right after its handshake
        # (no SASL exchange follows it) is dropped at random; 3.x fixed this. TLS 1.2 has
        # no post-handshake messages.
        context = ssl.create_default_context(cafile=security.ca)
        context.load_cert_chain(security.cert, security.key)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return dict(security_protocol="SSL", ssl_context=context)
    return dict(
        security_protocol="SSL", ssl_cafile=security.ca, ssl_certfile=security.cert, ssl_keyfile=security.key
    )


class Listener(ConsumerRebalanceListener):
    """Forwards kafka-python's rebalance callbacks (run inside poll()) to the member."""

    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        self.member._revoked([tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned):
        self.member._assigned([tp.partition for tp in assigned])


class Member(sc.ThreadMember):
    """A subscribed KafkaConsumer, owned by its member thread."""

    def __init__(self, bootstrap, topic, group, label, instance_id, offset_reset, paused):
        self.conf = dict(
            bootstrap_servers=bootstrap,
            group_id=group,
            group_instance_id=instance_id,
            client_id=label,
            enable_auto_commit=False,
            auto_offset_reset=offset_reset,  # "none": no committed offset raises instead of resetting
            session_timeout_ms=sc.SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=sc.HEARTBEAT_INTERVAL_MS,
        )
        self.topic = topic
        super().__init__(label, paused)

    def _open(self):
        self.consumer = KafkaConsumer(**self.conf)
        self.consumer.subscribe([self.topic], listener=Listener(self))
        # kafka-python 3.0.12 loses a join that only a metadata change asked for when
        # poll() times out in the middle of it: the leader's own assignment makes
        # need_rejoin() false, join_group_async stops awaiting the in-flight JoinGroup/
        # SyncGroup, and the member never takes its assignment or heartbeats again (it
        # is then removed for a missed session). Such a rejoin follows a first join made
        # before the consumer's metadata snapshot held the subscribed topic; topics()
        # forces a metadata update, which fills the snapshot, before the first poll
        # joins. (Seen against Strom in 2 of 8 runs on a loaded machine, where the first
        # JoinGroup was answered before the first metadata update arrived; not in 7 runs
        # against Apache Kafka 4.4. kafka-python 2.x has no such in-flight join.)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while self.topic not in self.consumer.topics():
            if time.monotonic() > deadline:
                raise sc.CheckFailed(f"{self.topic}: not in the metadata after {TIMEOUT_MS} ms")
            time.sleep(0.1)

    def _tps(self, partitions):
        return [TopicPartition(self.topic, p) for p in partitions]

    def _poll(self):
        batches = self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        return [sc.Record(tp.partition, r.offset, r.key, r.value) for tp, records in batches.items() for r in records]

    def _pause(self, partitions):
        self.consumer.pause(*self._tps(partitions))

    def _resume(self, partitions):
        self.consumer.resume(*self._tps(partitions))

    def _commit(self):
        self.consumer.commit(timeout_ms=TIMEOUT_MS)

    def _close(self):
        self.consumer.close(autocommit=False)

    def fenced(self):
        if not super().fenced() and self.assignment():
            try:
                self.call("fencing probe (commit)", lambda: self.consumer.commit(timeout_ms=5000))
            except Errors.FencedInstanceIdError as e:
                self._error(f"commit: {type(e).__name__}: {e}", fenced=True)
            except Exception as e:  # noqa: BLE001 - any other refusal is not fencing
                self._error(f"commit: {type(e).__name__}: {e}")
        return super().fenced()


class Adapter:
    """kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient for the scenario."""

    name = f"kafka-python-{MAJOR}"
    version = f"kafka-python {kafka.__version__}"

    def __init__(self, bootstrap, topic, security=None):
        self.bootstrap, self.topic = bootstrap, topic
        # Connection settings of every client made here: bootstrap plus, in the security
        # phase, the listener's protocol and credentials.
        self.connection = dict(bootstrap_servers=bootstrap, **security_options(security))
        if MAJOR < 3 and security is not None and security.kind == "mtls":
            self.security_note = " (TLS 1.2: kafka-python 2.x drops an idle connection on TLS 1.3's NewSessionTicket)"
        self.admin = KafkaAdminClient(**self.connection, request_timeout_ms=TIMEOUT_MS)

    def produce(self, topic, messages, idempotent=False, compression=None):
        options = dict(
            **self.connection,
            acks="all",
            linger_ms=20,
            max_block_ms=TIMEOUT_MS,
            request_timeout_ms=TIMEOUT_MS,
            compression_type=compression,
        )
        if idempotent:
            options["enable_idempotence"] = True
        producer = KafkaProducer(**options)
        try:
            futures = [producer.send(topic, key=key, value=value) for key, value in messages]
            producer.flush(timeout=TIMEOUT)
            acked = []
            for i, ((key, value), future) in enumerate(zip(messages, futures)):
                try:
                    md = future.get(timeout=TIMEOUT)
                except Errors.KafkaError as e:
                    raise sc.CheckFailed(f"produce to {topic}: send #{i} failed: {type(e).__name__}: {e}") from None
                acked.append(sc.Record(md.partition, md.offset, key, value))
            return acked
        finally:
            producer.close(timeout=TIMEOUT)

    def read_topic(self, topic):
        tps = [TopicPartition(topic, p) for p in sorted(self.describe_topic(topic))]
        consumer = KafkaConsumer(
            **self.connection,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            records = []
            deadline = time.monotonic() + TIMEOUT
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    positions = {tp.partition: consumer.position(tp) for tp in tps}
                    raise sc.CheckFailed(f"read {topic}: positions {positions} short of the ends after {TIMEOUT}s")
                for tp, batch in consumer.poll(timeout_ms=200).items():
                    records += [sc.Record(tp.partition, r.offset, r.key, r.value) for r in batch]
            return records
        finally:
            consumer.close(autocommit=False)

    def create_topic(self, name, partitions):
        if MAJOR >= 3:
            # 3.x raises on a non-zero error code (raise_errors=True).
            resp = self.admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
            codes = [(t["name"], t["error_code"]) for t in resp["topics"]]
        else:
            from kafka.admin import NewTopic

            resp = self.admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
            codes = [(t[0], t[1]) for t in resp.topic_errors]
        if codes != [(name, 0)]:
            raise sc.CheckFailed(f"create_topics({name}, {partitions} partitions): (name, error_code) = {codes}")

    def list_topics(self):
        return set(self.admin.list_topics())

    def describe_topic(self, name):
        for t in self.admin.describe_topics([name]):
            if t.get("name", t.get("topic")) == name and t["error_code"] == 0:
                return {
                    p.get("partition_index", p.get("partition")): p.get("leader", p.get("leader_id", -1))
                    if p["error_code"] == 0
                    else -1
                    for p in t["partitions"]
                }
        return {}

    def missing_codecs(self):
        return {codec: f"{pkg} not importable" for codec, (usable, pkg) in CODEC_PACKAGES.items() if not usable()}

    def committed(self, group, partitions):
        # Not through a member: kafka-python 3.0.12 loses a join in progress when
        # committed() happens to read the SyncGroup response (the member then never
        # heartbeats again), so a consumer that does not join the group reads them.
        consumer = KafkaConsumer(**self.connection, group_id=group, enable_auto_commit=False)
        try:
            return {p: consumer.committed(TopicPartition(self.topic, p), timeout_ms=TIMEOUT_MS) for p in partitions}
        finally:
            consumer.close(autocommit=False)

    def member(self, group, label, instance_id=None, offset_reset="earliest", paused=True):
        return Member(self.bootstrap, self.topic, group, label, instance_id, offset_reset, paused)

    def close(self):
        self.admin.close()


def main():
    args = sc.parse_args(
        __doc__,
        extra=lambda ap: ap.add_argument("--expect-major", type=int, help="fail unless kafka-python has this major"),
    )
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def make_adapter(security=None):
        if args.expect_major is not None and MAJOR != args.expect_major:
            raise sc.CheckFailed(f"expected kafka-python {args.expect_major}.x, this venv has {kafka.__version__}")
        return Adapter(security.bootstrap if security else args.bootstrap, args.topic, security)

    sc.main(args, Adapter.name, Adapter.version, make_adapter)


if __name__ == "__main__":
    main()
