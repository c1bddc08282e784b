#!/usr/bin/env python3
"""aiokafka in the compatibility scenario (compat_scenario.py).

Run by e2e/clients/run_compat.py in the aiokafka venv. The scenario is
synchronous, so all of aiokafka runs on one asyncio loop in a background thread
and the scenario submits coroutines to it. snappy, lz4 and zstd come from cramjam.
A static member's stop() sends no LeaveGroup. aiokafka has no FENCED_INSTANCE_ID
handling (its Heartbeat and OffsetCommit requests carry no group.instance.id), so
a stale static member shows up as one whose commit the broker refuses
(CommitFailedError: its member id was replaced).
"""

import asyncio
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout

import aiokafka
import aiokafka.errors as Errors
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka import codec as aiokafka_codec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context

import compat_scenario as sc

TIMEOUT = 30  # seconds for one produce/admin/read operation
TIMEOUT_MS = TIMEOUT * 1000
CODEC_SUPPORT = {
    "gzip": aiokafka_codec.has_gzip,
    "snappy": aiokafka_codec.has_snappy,
    "lz4": aiokafka_codec.has_lz4,
    "zstd": aiokafka_codec.has_zstd,
}


class Loop:
    """An asyncio loop in a daemon thread; run() executes a coroutine there and waits."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="asyncio", daemon=True).start()

    def run(self, what, coro, timeout=TIMEOUT):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise sc.CheckFailed(f"{what} did not finish within {timeout}s") from None


def security_options(security):
    """aiokafka options for the security phase's listener (none otherwise)."""
    if security is None:
        return {}
    if security.kind == "sasl":
        return dict(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=security.user,
            sasl_plain_password=security.password,
            ssl_context=create_ssl_context(cafile=security.ca),
        )
    context = create_ssl_context(cafile=security.ca, certfile=security.cert, keyfile=security.key)
    return dict(security_protocol="SSL", ssl_context=context)


class Listener(ConsumerRebalanceListener):
    """Forwards aiokafka's rebalance callbacks (run on the loop) to the member."""

    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        self.member._revoked([tp.partition for tp in revoked])

    def on_partitions_assigned(self, assigned):
        self.member._assigned([tp.partition for tp in assigned])


class Member(sc.MemberState):
    """A subscribed AIOKafkaConsumer with a task on the loop that keeps calling getmany()."""

    def __init__(self, loop, conf, topic, label, paused):
        super().__init__(label, paused)
        self.loop, self.topic = loop, topic
        self.closed = False
        loop.run(f"{label}: start", self._start(conf))

    async def _start(self, conf):
        self.consumer = AIOKafkaConsumer(**conf)
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=Listener(self))
        self.task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_forever(self):
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=100)
                self._got([sc.Record(tp.partition, r.offset, r.key, r.value) for tp, rs in batches.items() for r in rs])
            except Errors.KafkaError as e:  # recorded; the member keeps polling like an app would
                self._error(f"getmany: {type(e).__name__}: {e}")
                await asyncio.sleep(0.2)

    def _tps(self, partitions):
        return [TopicPartition(self.topic, p) for p in partitions]

    def _pause(self, partitions):
        self.consumer.pause(*self._tps(partitions))

    def release(self):
        async def resume():
            self._released = True
            if self.assignment():
                self.consumer.resume(*self._tps(self.assignment()))

        self.loop.run(f"{self.label}: resume", resume())

    def commit(self):
        self.loop.run(f"{self.label}: commit", self.consumer.commit())

    def close(self):
        if self.closed:
            return
        self.closed = True

        async def stop():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            await self.consumer.stop()

        self.loop.run(f"{self.label}: stop", stop())

    def fenced(self):
        if not super().fenced() and self.assignment():
            try:
                self.loop.run(f"{self.label}: fencing probe (commit)", self.consumer.commit(), timeout=5)
            except Errors.CommitFailedError as e:
                self._error(f"commit refused, member id replaced: {e}", fenced=True)
            except Exception as e:  # noqa: BLE001 - any other refusal is not fencing
                self._error(f"commit: {type(e).__name__}: {e}")
        return super().fenced()


class Adapter:
    """aiokafka's producer, consumer and admin client, driven through the loop thread."""

    name = "aiokafka"
    version = f"aiokafka {aiokafka.__version__}"

    def __init__(self, bootstrap, topic, security=None):
        self.bootstrap, self.topic = bootstrap, topic
        # Connection settings of every client made here: bootstrap plus, in the security
        # phase, the listener's protocol and credentials.
        self.connection = dict(bootstrap_servers=bootstrap, **security_options(security))
        self.loop = Loop()
        self.admin = self.loop.run("admin client start", self._start_admin())

    async def _start_admin(self):
        admin = AIOKafkaAdminClient(**self.connection, request_timeout_ms=TIMEOUT_MS)
        await admin.start()
        return admin

    def produce(self, topic, messages, idempotent=False, compression=None):
        async def produce():
            producer = AIOKafkaProducer(
                **self.connection,
                acks="all",
                linger_ms=20,
                request_timeout_ms=TIMEOUT_MS,
                enable_idempotence=idempotent,
                compression_type=compression,
            )
            await producer.start()
            try:
                futures = [await producer.send(topic, key=key, value=value) for key, value in messages]
                acked = []
                for i, ((key, value), future) in enumerate(zip(messages, futures)):
                    try:
                        md = await future
                    except Errors.KafkaError as e:
                        raise sc.CheckFailed(f"produce to {topic}: send #{i} failed: {type(e).__name__}: {e}") from None
                    acked.append(sc.Record(md.partition, md.offset, key, value))
                return acked
            finally:
                await producer.stop()

        return self.loop.run(f"produce to {topic}", produce(), timeout=2 * TIMEOUT)

    def read_topic(self, topic):
        tps = [TopicPartition(topic, p) for p in sorted(self.describe_topic(topic))]

        async def read():
            consumer = AIOKafkaConsumer(**self.connection, group_id=None, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = await consumer.end_offsets(tps)
                records = []
                while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                    for tp, batch in (await consumer.getmany(*tps, timeout_ms=200)).items():
                        records += [sc.Record(tp.partition, r.offset, r.key, r.value) for r in batch]
                return records
            finally:
                await consumer.stop()

        return self.loop.run(f"read {topic}", read())

    def create_topic(self, name, partitions):
        resp = self.loop.run(
            "create_topics", self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        )
        codes = [(t[0], t[1]) for t in resp.topic_errors]
        if codes != [(name, 0)]:
            raise sc.CheckFailed(f"create_topics({name}, {partitions} partitions): (name, error_code) = {codes}")

    def list_topics(self):
        return set(self.loop.run("list_topics", self.admin.list_topics()))

    def describe_topic(self, name):
        for t in self.loop.run("describe_topics", self.admin.describe_topics([name])):
            if t["topic"] == name and t["error_code"] == 0:
                return {p["partition"]: p["leader"] if p["error_code"] == 0 else -1 for p in t["partitions"]}
        return {}

    def missing_codecs(self):
        return {codec: "cramjam not importable" for codec, usable in CODEC_SUPPORT.items() if not usable()}

    def committed(self, group, partitions):
        async def committed():
            consumer = AIOKafkaConsumer(**self.connection, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                return {p: await consumer.committed(TopicPartition(self.topic, p)) for p in partitions}
            finally:
                await consumer.stop()

        return self.loop.run(f"committed offsets of {group}", committed())

    def member(self, group, label, instance_id=None, offset_reset="earliest", paused=True):
        conf = dict(
            **self.connection,
            group_id=group,
            group_instance_id=instance_id,
            client_id=label,
            enable_auto_commit=False,
            auto_offset_reset=offset_reset,  # "none": no committed offset raises instead of resetting
            session_timeout_ms=sc.SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=sc.HEARTBEAT_INTERVAL_MS,
        )
        return Member(self.loop, conf, self.topic, label, paused)

    def close(self):
        self.loop.run("admin client close", self.admin.close())


def main():
    args = sc.parse_args(__doc__)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sc.main(
        args,
        Adapter.name,
        Adapter.version,
        lambda security=None: Adapter(security.bootstrap if security else args.bootstrap, args.topic, security),
    )


if __name__ == "__main__":
    main()
