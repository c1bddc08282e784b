"""The CONTRACT.md scenario, written once for the Python client libraries.

Each client program (compat_confluent_kafka.py, compat_kafka_python.py,
compat_aiokafka.py) wraps its library in an adapter and calls `main()`; this module
runs the phase the driver asked for, decides each capability, and prints the
`COMPAT {json}` line last. Stdlib only, so the venvs need nothing extra.

An adapter provides:
  name, version                       row name and "library <version>" string
  produce(topic, messages, idempotent=False, compression=None) -> [Record]
                                      (key, value) pairs, acks=all; the acknowledged
                                      records in send order; raises on any failure
  read_topic(topic) -> [Record]       group-less (assign) read of every partition
                                      from the beginning up to the end offsets
  create_topic(name, partitions), list_topics() -> set, describe_topic(name) -> {partition: leader}
  missing_codecs() -> {codec: reason} codecs the library could use but cannot here
  committed(group, partitions) -> {partition: offset or None}
                                      the group's committed offsets, read by a consumer
                                      that does not join the group
  member(group, label, instance_id=None, offset_reset="earliest", paused=True) -> Member
  close()
make_adapter(security=None) makes the adapter; for the security phase it is called with a
Security: every client the adapter makes then connects to security.bootstrap that way
(SASL_SSL with SCRAM-SHA-512, or SSL with the client certificate).
A member is one subscribed consumer (see MemberState): it keeps polling on its
own, and while paused it joins the group but consumes nothing.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

PARTITIONS = 6  # the driver starts the broker with num.partitions=6
KEYS = 60
KEYED, IDEMPOTENT, PER_CODEC, LATER, SECURE = 600, 100, 10, 300, 20
CODECS = ("gzip", "snappy", "lz4", "zstd")
SESSION_TIMEOUT_MS = 10_000  # long enough to restart a static member, short enough to wait out
HEARTBEAT_INTERVAL_MS = 1_000  # members notice a rebalance within a second
GROUP_TIMEOUT = 45  # seconds for a group to form or re-form
LEAVE_TIMEOUT = 0.8 * SESSION_TIMEOUT_MS / 1000  # seconds to re-form after a LeaveGroup
CONSUME_TIMEOUT = 45  # seconds to receive what is expected
CALL_TIMEOUT = 30  # seconds for one client call (commit, close, ...)
PHASE_BUDGET = 160  # seconds; the driver kills a phase at 180
PHASE_CAPABILITIES = {
    "one": ["produce", "idempotence", "compression", "consume", "groups", "commit_resume", "static_membership"],
    "two": ["commit_resume"],
    "security": ["sasl_scram", "mtls"],
}


@dataclass(frozen=True)
class Security:
    """How the security phase's clients connect (CONTRACT.md, phase security).

    kind "sasl": SASL_SSL with SCRAM-SHA-512 as user/password, the broker's certificate
    checked against ca (host name 127.0.0.1 / localhost); kind "mtls": SSL with the client
    certificate cert and its key (PEM, unencrypted PKCS#8), the broker checked likewise.
    """

    kind: str
    bootstrap: str
    ca: str
    cert: str
    key: str
    user: str
    password: str


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class CheckFailed(Exception):
    """The broker (or the client against it) did not do what Kafka does."""


def keyed(prefix, count, pad=0):
    """(key, value) pairs: keys key-0..key-59 cycling, values "<prefix>:<seq>" (+ padding)."""
    filler = " compressible" * pad
    return [(f"key-{i % KEYS}".encode(), f"{prefix}:{i}{filler}".encode()) for i in range(count)]


_log_lock = threading.Lock()


def log(msg):
    """A timestamped progress line; member threads log too, hence the lock."""
    with _log_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(what, condition, timeout, detail=None, interval=0.1):
    """Poll condition() until it holds; CheckFailed at the deadline (with detail())."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            suffix = f"; {detail()}" if detail else ""
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}{suffix}")
        time.sleep(interval)


def hold(what, condition, until, detail=None, interval=0.1):
    """condition() must stay true until the monotonic time `until`."""
    while time.monotonic() < until:
        if not condition():
            raise CheckFailed(f"{what} did not hold" + (f"; {detail()}" if detail else ""))
        time.sleep(interval)


def compare(what, got, want):
    """got (records) must hold every (partition, offset) of want exactly once, with its value."""
    seen = Counter((r.partition, r.offset) for r in got)
    problems = []
    dups = sorted(k for k, n in seen.items() if n > 1)
    missing = sorted(want.keys() - seen.keys())
    extra = sorted(seen.keys() - want.keys())
    wrong = [
        (r.partition, r.offset, r.value[:40])
        for r in got if want.get((r.partition, r.offset), r.value) != r.value
    ]
    if missing:
        problems.append(f"{len(missing)} missing (partition, offset), e.g. {missing[:3]}")
    if dups:
        problems.append(f"{len(dups)} received more than once, e.g. {dups[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected, e.g. {extra[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} with a different value, e.g. {wrong[:2]}")
    if problems:
        raise CheckFailed(f"{what}: {len(got)} received, {len(want)} expected: " + "; ".join(problems))


def check_order(what, records):
    """Offsets must increase per partition in the order a consumer received them."""
    last = {}
    for r in records:
        if r.offset <= last.get(r.partition, -1):
            raise CheckFailed(f"{what}: partition {r.partition} offset {r.offset} came after {last[r.partition]}")
        last[r.partition] = r.offset


def by_position(records):
    return {(r.partition, r.offset): r.value for r in records}


class MemberState:
    """What a member has seen, shared between its polling context and the scenario thread.

    Subclasses call _assigned/_revoked from their library's rebalance callbacks,
    _got with polled records and _error with errors, and implement _pause(partitions).
    While not released, every newly assigned partition is paused: the member takes
    part in the group but reads nothing until the scenario says so.
    """

    def __init__(self, label, paused):
        self.label = label
        self._lock = threading.Lock()
        self._assignment = frozenset()
        self._callbacks = 0
        self._records = []
        self._errors = []
        self._fenced = False
        self._released = not paused

    def _assigned(self, partitions):
        with self._lock:
            self._assignment = frozenset(partitions)
            self._callbacks += 1
        log(f"{self.label}: assigned {sorted(partitions)}")
        if not self._released and partitions:
            self._pause(partitions)

    def _revoked(self, partitions):
        with self._lock:
            self._assignment = self._assignment - set(partitions)
            self._callbacks += 1
        log(f"{self.label}: revoked {sorted(partitions)}")

    def _got(self, records):
        if records:
            with self._lock:
                self._records.extend(records)

    def _error(self, message, fenced=False):
        with self._lock:
            if not self._errors or self._errors[-1] != message:
                self._errors.append(message)
                log(f"{self.label}: error: {message}")
            self._fenced = self._fenced or fenced

    def assignment(self):
        with self._lock:
            return self._assignment

    def rebalance_callbacks(self):
        with self._lock:
            return self._callbacks

    def records(self):
        with self._lock:
            return list(self._records)

    def errors(self):
        with self._lock:
            return list(self._errors[-5:])

    def fenced(self):
        """Whether the library told this member it was fenced (adapters may probe further)."""
        with self._lock:
            return self._fenced


class ThreadMember(MemberState):
    """A member whose consumer lives in its own thread (the sync libraries are not thread-safe).

    The thread polls continuously (which is what keeps a member in its group) and
    runs the scenario's requests between polls. Subclasses implement _open, _poll
    (returns records), _pause, _resume, _commit and _close.
    """

    def __init__(self, label, paused):
        super().__init__(label, paused)
        self._requests = queue.Queue()
        self._closed = False
        opened = Future()
        threading.Thread(target=self._run, args=(opened,), name=label, daemon=True).start()
        opened.result(timeout=CALL_TIMEOUT)

    def _run(self, opened):
        try:
            self._open()
        except Exception as e:  # noqa: BLE001 - handed to the scenario thread
            opened.set_exception(e)
            return
        opened.set_result(None)
        while not self._closed:
            while not self._requests.empty():
                fn, done = self._requests.get()
                try:
                    done.set_result(fn())
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    done.set_exception(e)
            if self._closed:
                break
            try:
                self._got(self._poll())
            except Exception as e:  # noqa: BLE001 - recorded; the member keeps polling like an app would
                self._error(f"poll: {type(e).__name__}: {e}", fenced="Fenced" in type(e).__name__)
                time.sleep(0.2)

    def call(self, what, fn, timeout=CALL_TIMEOUT):
        """Run fn in the member's thread and return its result."""
        done = Future()
        self._requests.put((fn, done))
        try:
            return done.result(timeout=timeout)
        except FutureTimeout:
            raise CheckFailed(f"{self.label}: {what} did not return within {timeout}s") from None

    def release(self):
        def resume():
            self._released = True
            if self.assignment():
                self._resume(self.assignment())

        self.call("resume", resume)

    def commit(self):
        self.call("commit", self._commit)

    def close(self):
        """Close the consumer (as the library does on close) and end the thread; idempotent."""
        if self._closed:
            return

        def close():
            self._closed = True
            self._close()

        self.call("close", close)


def split_ok(members, partitions=PARTITIONS):
    """Every member has partitions, none shared, all covered."""
    parts = [m.assignment() for m in members]
    union = frozenset().union(*parts)
    return all(parts) and sum(len(p) for p in parts) == len(union) and union == frozenset(range(partitions))


def describe(members):
    return ", ".join(
        f"{m.label}={sorted(m.assignment())}" + (f" errors={m.errors()}" if m.errors() else "") for m in members
    )


def close_all(members):
    """Close members; a close that fails is logged, not raised (cleanup path)."""
    for m in members:
        try:
            m.close()
        except Exception as e:  # noqa: BLE001 - cleanup
            log(f"{m.label}: close failed: {type(e).__name__}: {e}")


class Report:
    """The phase's results; printed once as the COMPAT line (also by the watchdog)."""

    def __init__(self, client, version, phase):
        self.client, self.version = client, version
        self.capabilities = PHASE_CAPABILITIES[phase]
        self.checks, self.notes = {}, {}
        self.step_name = "start"
        self._lock = threading.Lock()
        self._emitted = False

    def passed(self, cap, note=""):
        with self._lock:
            if self.checks.get(cap) != "fail":
                self.checks[cap], self.notes[cap] = "pass", note
        log(f"PASS {cap}" + (f": {note}" if note else ""))

    def failed(self, cap, note):
        with self._lock:
            if self.checks.get(cap) == "fail":
                self.notes[cap] += "; " + note
            else:
                self.checks[cap], self.notes[cap] = "fail", note
        log(f"FAIL {cap}: {note}")

    def step(self, *caps, name=None):
        return _Step(self, caps, name or "/".join(caps))

    def emit_and_exit(self, reason=None):
        """Print the COMPAT line and end the process, even if library threads linger."""
        with self._lock:
            if self._emitted:
                return
            self._emitted = True
            for cap in self.capabilities:
                if cap not in self.checks:
                    self.checks[cap] = "fail"
                    self.notes[cap] = reason or f"not checked (stopped at: {self.step_name})"
            line = {"client": self.client, "version": self.version, "checks": self.checks, "notes": self.notes}
        sys.stderr.flush()
        print("COMPAT " + json.dumps(line), flush=True)
        os._exit(1 if "fail" in self.checks.values() else 0)


class _Step:
    """A block that checks caps: an exception fails each cap it left undecided.

    Caps pass only by an explicit report.passed(); whatever no block decided is
    reported as failed ("not checked") when the phase ends.
    """

    def __init__(self, report, caps, name):
        self.report, self.caps, self.name = report, caps, name

    def __enter__(self):
        self.report.step_name = self.name
        log(f"--- {self.name}")

    def __exit__(self, kind, error, tb):
        if not isinstance(error, Exception):
            return False
        if isinstance(error, CheckFailed):
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error}"
            traceback.print_exception(kind, error, tb, file=sys.stdout)
        for cap in self.caps:
            if cap not in self.report.checks:
                self.report.failed(cap, message)
        return True


def check_produce(adapter, args, report):
    acked = adapter.produce(args.topic, keyed("one", KEYED))
    if len(acked) != KEYED:
        raise CheckFailed(f"{len(acked)} of {KEYED} acknowledged")
    parts = Counter(r.partition for r in acked)
    for partition, count in sorted(parts.items()):
        offsets = sorted(r.offset for r in acked if r.partition == partition)
        if offsets != list(range(count)):
            raise CheckFailed(
                f"partition {partition} of the fresh topic acknowledged offsets {offsets[:5]}..., "
                f"expected 0..{count - 1}"
            )
    # Metadata and admin: the topic was auto-created with six partitions, and the
    # admin client creates a topic and then lists and describes it.
    described = adapter.describe_topic(args.topic)
    if sorted(described) != list(range(PARTITIONS)) or min(described.values()) < 0:
        raise CheckFailed(
            f"auto-created {args.topic} described as {described}, expected {PARTITIONS} partitions with leaders"
        )
    created = f"{args.topic}-admin"
    adapter.create_topic(created, 3)
    wait_for(
        f"{created} (3 partitions) to be listed and described",
        lambda: created in adapter.list_topics() and sorted(adapter.describe_topic(created)) == [0, 1, 2],
        GROUP_TIMEOUT,
        detail=lambda: f"described as {adapter.describe_topic(created)}",
    )
    report.passed(
        "produce",
        f"{KEYED} keyed acks=all acknowledged at offsets 0.. of partitions {sorted(parts)}; "
        "admin created and listed a 3-partition topic",
    )
    return acked


def check_idempotence(adapter, args, report):
    acked = adapter.produce(args.topic, keyed("idem", IDEMPOTENT), idempotent=True)
    back = [r for r in adapter.read_topic(args.topic) if r.value.startswith(b"idem:")]
    compare("idempotent messages read back", back, by_position(acked))
    for partition in range(PARTITIONS):
        seqs = [int(r.value.split(b":")[1]) for r in sorted(back, key=lambda r: r.offset) if r.partition == partition]
        if seqs != sorted(seqs):
            raise CheckFailed(f"idempotent messages out of send order in partition {partition}: {seqs[:10]}")
    report.passed("idempotence", f"{IDEMPOTENT} messages, each stored once, in send order per partition")
    return acked


def check_compression(adapter, args, report):
    missing = adapter.missing_codecs()
    tried = []
    for codec in CODECS:
        if codec in missing:
            continue
        topic = f"{args.topic}-{codec}"
        acked = adapter.produce(topic, keyed(codec, PER_CODEC, pad=40), compression=codec)
        back = adapter.read_topic(topic)
        compare(f"{codec} round trip", back, by_position(acked))
        check_order(f"{codec} round trip", back)
        tried.append(codec)
    if missing:
        raise CheckFailed(f"round-tripped {tried or 'none'}; unavailable: {missing}")
    report.passed("compression", ", ".join(tried))


def check_groups(adapter, args, report, expected):
    """consume + groups + the commit half of commit_resume; writes --state for phase two."""
    members = []
    try:
        with report.step("consume", "groups", "commit_resume"):
            members += [adapter.member(args.group, f"member-{i}") for i in range(3)]
            wait_for(
                "three members to split the six partitions",
                lambda: split_ok(members),
                GROUP_TIMEOUT,
                detail=lambda: describe(members),
            )
            three = describe(members)
            log(f"group formed: {three}")
            for m in members:
                m.release()
            want = by_position(expected)
            wait_for(
                f"the {len(want)} messages produced so far",
                lambda: sum(len(m.records()) for m in members) >= len(want),
                CONSUME_TIMEOUT,
                detail=lambda: f"received {sum(len(m.records()) for m in members)}; {describe(members)}",
            )
            got = [r for m in members for r in m.records()]
            compare("group consumption", got, want)
            for m in members:
                check_order(f"{m.label}'s consumption", m.records())
            report.passed("consume", f"{len(want)} messages exactly once across 3 members")

            for m in members:
                m.commit()
            ends = dict.fromkeys(range(PARTITIONS))  # None: nothing consumed, nothing committed
            for r in got:
                ends[r.partition] = max(ends[r.partition] or 0, r.offset + 1)
            committed = adapter.committed(args.group, range(PARTITIONS))
            if committed != ends:
                report.failed("commit_resume", f"committed offsets read back {committed}, consumed up to {ends}")

            with report.step("groups"):
                members[0].close()
                remaining = members[1:]
                # Sooner than the closed member's session could expire: its LeaveGroup did it.
                wait_for(
                    "the two remaining members to split the six partitions after one left",
                    lambda: split_ok(remaining),
                    LEAVE_TIMEOUT,
                    detail=lambda: describe(remaining),
                )
                report.passed("groups", f"3 members: {three}; after a clean close: {describe(remaining)}")
            close_all(members[1:])
            members.clear()

            later = adapter.produce(args.topic, keyed("two", LATER))
            with open(args.state, "w") as f:
                json.dump(
                    {"committed": committed, "later": [[r.partition, r.offset, r.value.decode()] for r in later]},
                    f,
                )
            report.passed("commit_resume", f"phase one: committed offsets read back = consumed ends {ends}")
    finally:
        close_all(members)


def check_static_membership(adapter, args, report):
    group = f"{args.group}-static"
    members = []

    def start(instance, label):
        m = adapter.member(group, label, instance_id=instance, paused=False)
        members.append(m)
        return m

    try:
        a, b = start("a", "static-a"), start("b", "static-b")
        wait_for(
            "static members a and b to split the six partitions",
            lambda: split_ok([a, b]),
            GROUP_TIMEOUT,
            detail=lambda: describe([a, b]),
        )
        a_parts, b_parts, b_callbacks = a.assignment(), b.assignment(), b.rebalance_callbacks()
        log(f"static group formed: {describe([a, b])}")

        stopped = time.monotonic()
        a.close()  # a static member's close keeps its membership: no LeaveGroup
        a2 = start("a", "static-a-restarted")
        wait_for(
            "the restarted 'a' to get an assignment",
            lambda: a2.assignment(),
            GROUP_TIMEOUT,
            detail=lambda: describe([a2, b]),
        )
        if a2.assignment() != a_parts:
            raise CheckFailed(f"restarted 'a' got {sorted(a2.assignment())}, before it had {sorted(a_parts)}")
        # Past the session timeout of the old 'a' too: its expiry must not rebalance either.
        hold(
            "'b' keeping its partitions without a rebalance callback while 'a' came back",
            lambda: b.assignment() == b_parts and b.rebalance_callbacks() == b_callbacks and a2.assignment() == a_parts,
            stopped + SESSION_TIMEOUT_MS / 1000 + 2,
            detail=lambda: f"{describe([a2, b])}; b had {sorted(b_parts)}, "
            f"rebalance callbacks {b_callbacks} -> {b.rebalance_callbacks()}",
        )

        b2 = start("b", "static-b-duplicate")
        wait_for(
            "one of the two members with group.instance.id 'b' to be fenced",
            lambda: b.fenced() or b2.fenced(),
            GROUP_TIMEOUT,
            detail=lambda: describe([b, b2]),
            interval=0.5,
        )
        which = "the older" if b.fenced() else "the newer"
        report.passed(
            "static_membership",
            f"restarted 'a' got {sorted(a_parts)} back, 'b' untouched; {which} 'b' fenced by a duplicate instance id",
        )
    finally:
        close_all(members)


def phase_one(adapter, args, report):
    expected = []
    with report.step("produce"):
        expected += check_produce(adapter, args, report)
    with report.step("idempotence"):
        expected += check_idempotence(adapter, args, report)
    with report.step("compression"):
        check_compression(adapter, args, report)
    check_groups(adapter, args, report, expected)
    with report.step("static_membership"):
        check_static_membership(adapter, args, report)


def phase_two(adapter, args, report):
    with report.step("commit_resume"):
        try:
            with open(args.state) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise CheckFailed(f"no usable state from phase one ({e})") from None
        recorded = {int(p): o for p, o in state["committed"].items()}
        want = {(p, o): v.encode() for p, o, v in state["later"]}
        committed = adapter.committed(args.group, range(PARTITIONS))
        if committed != recorded:
            raise CheckFailed(f"committed offsets after the restart {committed}, phase one committed {recorded}")
        m = adapter.member(args.group, "resume", offset_reset="none", paused=False)
        try:
            wait_for(
                f"the {len(want)} messages produced after the commit",
                lambda: want.keys() <= {(r.partition, r.offset) for r in m.records()},
                CONSUME_TIMEOUT,
                detail=lambda: f"received {len(m.records())}; {describe([m])}",
            )
            compare("resumed consumption", m.records(), want)
            check_order("resumed consumption", m.records())
        finally:
            close_all([m])
        report.passed("commit_resume", f"commits survived the restart; resumed exactly there ({len(want)} messages)")


def phase_security(make_adapter, args, report):
    """sasl_scram and mtls: SECURE messages round-trip over each secured listener."""
    for cap, kind, bootstrap, how in (
        ("sasl_scram", "sasl", args.sasl_bootstrap, f"SASL_SSL, SCRAM-SHA-512 as {args.scram_user}"),
        ("mtls", "mtls", args.mtls_bootstrap, "SSL with a client certificate (ssl.client.auth=required)"),
    ):
        with report.step(cap):
            security = Security(
                kind, bootstrap, args.ca, args.client_cert, args.client_key, args.scram_user, args.scram_password
            )
            adapter = make_adapter(security)
            try:
                topic = f"{args.topic}-{kind}"
                acked = adapter.produce(topic, keyed(kind, SECURE))
                back = adapter.read_topic(topic)
                compare(f"{kind} round trip", back, by_position(acked))
                check_order(f"{kind} round trip", back)
            finally:
                adapter.close()
            # An adapter may qualify how it connected (security_note, e.g. a TLS version cap).
            qualified = getattr(adapter, "security_note", "")
            report.passed(cap, f"{SECURE} messages produced and read back over {how}{qualified}")


def parse_args(doc, extra=None):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="host:port")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--phase", required=True, choices=sorted(PHASE_CAPABILITIES))
    ap.add_argument("--state", required=True, help="file phase one writes and phase two reads")
    ap.add_argument("--debug", action="store_true", help="the client library's debug logging")
    # The security phase's listeners and credentials (given only for --phase security).
    ap.add_argument("--sasl-bootstrap", help="host:port of the SASL_SSL listener (SCRAM-SHA-512)")
    ap.add_argument("--mtls-bootstrap", help="host:port of the SSL listener that requires a client certificate")
    ap.add_argument("--ca", help="PEM file of the CA that signed the broker's (and the client's) certificate")
    ap.add_argument("--client-cert", help="PEM file of the client certificate (mutual TLS)")
    ap.add_argument("--client-key", help="PEM file of the client certificate's key (PKCS#8, unencrypted)")
    ap.add_argument("--scram-user", help="SCRAM-SHA-512 user name")
    ap.add_argument("--scram-password", help="SCRAM-SHA-512 password")
    if extra:
        extra(ap)
    return ap.parse_args()


def main(args, client, version, make_adapter):
    """Run the phase and exit with the COMPAT line as the last stdout line."""
    report = Report(client, version, args.phase)
    log(f"{version}: phase {args.phase} against {args.bootstrap}")
    watchdog = threading.Timer(
        PHASE_BUDGET, lambda: report.emit_and_exit(f"phase over its {PHASE_BUDGET}s budget at: {report.step_name}")
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        with report.step(*report.capabilities, name=f"phase {args.phase}"):
            if args.phase == "security":
                phase_security(make_adapter, args, report)
            else:
                adapter = make_adapter()
                try:
                    (phase_one if args.phase == "one" else phase_two)(adapter, args, report)
                finally:
                    adapter.close()
    finally:
        report.emit_and_exit()
