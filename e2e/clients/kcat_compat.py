#!/usr/bin/env python3
"""kcat compatibility program (e2e/clients/CONTRACT.md): Debian's kcat, librdkafka inside.

    python3 e2e/clients/kcat_compat.py --bootstrap HOST:PORT --topic T --group G \
        --phase one|two|security --state FILE [security flags, see CONTRACT.md]

Stdlib only. Every Kafka operation is done by a kcat process; this script only feeds
them, reads what they print and judges. The last stdout line is `COMPAT {json}`.

How kcat is observed:
- produce: `kcat -P -K: -vv` prints one "Message delivered to partition P (offset O)"
  line per acknowledged message; the messages are read back with
  `kcat -C -o beginning -e -J` (no group), which gives partition/offset/key/value.
- compression: the codec producers run with `-d msg`; librdkafka logs each batch as
  "Produce MessageSet with N message(s) (..., CODEC)", which shows whether it really
  compressed (it silently sends batches uncompressed when it believes the broker lacks
  the codec, and a round trip cannot tell).
- group members are `kcat -G GROUP TOPIC -J -u` processes. Their assignment comes from
  the lines kcat's rebalance callback prints on stderr
  ("% Group G rebalanced (memberid M): assigned: T [0], T [3]" / "revoked: ...").
- commits: kcat -G never calls commit itself, and auto commit cannot be turned off
  through kcat: `-X` tries the topic configuration first, so `-X enable.auto.commit=false`
  and `-X auto.commit.interval.ms=N` land on the legacy consumer's topic properties of
  the same names and the balanced consumer keeps enable.auto.commit=true, interval 5 s
  (see `kcat -X dump`). So the members of --group commit through librdkafka's auto
  commit of the offsets it stores as kcat prints each message (enable.auto.offset.store,
  a global property kcat does set): every 5 s, when partitions are revoked (the
  rebalance when a member leaves), and when kcat closes the consumer on SIGTERM, which
  waits for that commit. The program closes the members with SIGTERM and then checks
  what was committed. Consumers that must not commit (the probe, phase two's member,
  the static members) run with enable.auto.offset.store=false: nothing stored, nothing
  committed.
- committed offsets: a probe member with auto.offset.reset=error and -e joins the
  (otherwise empty) group; librdkafka starts each partition at the committed offset it
  fetched (OffsetFetch), so with nothing to consume kcat reports "Reached end of topic
  T [p] at offset N" with N = the committed offset, and a missing commit is a fatal error
  instead of a silent reset.
- security phase: the same produce / read-back pair with `-X security.protocol=SASL_SSL
  -X sasl.mechanisms=SCRAM-SHA-512 ...` or `-X security.protocol=SSL
  -X ssl.certificate.location=... -X ssl.key.location=...` (and `ssl.ca.location`).
- the three members subscribe before anything is produced (the topic is created
  first through a metadata request, `kcat -L -t`), so no member consumes a message a
  later rebalance would hand to another member.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

CLIENT = "kcat"
PARTITIONS = 6
KEYS = 60
N_ONE, N_IDEM, N_TWO, N_CODEC, N_SECURE = 600, 100, 300, 10, 20
CODECS = ["gzip", "snappy", "lz4", "zstd"]
PHASE_CAPS = {
    "one": ["produce", "consume", "groups", "static_membership", "compression", "idempotence"],
    "two": ["commit_resume"],
    "security": ["sasl_scram", "mtls"],
}
T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


class Check(Exception):
    """A check failed; the message is the COMPAT note."""


def ensure(cond, msg):
    if not cond:
        raise Check(msg)


# ---------------------------------------------------------------------------------------
# Processes


class Proc:
    """A kcat process; stdout and stderr lines collected by threads.

    It stays in this script's process group, so the driver's kill of the group on a
    timeout ends it too; this script signals it by pid (kcat starts no children)."""

    def __init__(self, name, argv, stdin_text=None):
        self.name = name
        self.argv = argv
        self.lock = threading.Lock()
        self.out = []
        self.err = []
        say(f"{name}: $ {' '.join(argv)}")
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.threads = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True),
        ]
        for t in self.threads:
            t.start()
        if stdin_text is not None:
            threading.Thread(target=self._feed, args=(stdin_text,), daemon=True).start()

    def _feed(self, text):
        try:
            self.p.stdin.write(text)
            self.p.stdin.close()
        except OSError:
            pass

    def _read(self, stream, sink):
        for line in stream:
            with self.lock:
                sink.append(line.rstrip("\n"))

    def stdout(self):
        with self.lock:
            return list(self.out)

    def stderr(self):
        with self.lock:
            return list(self.err)

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            code = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.threads:
            t.join(timeout=5)
        return code

    def terminate(self, timeout=20):
        """SIGTERM (kcat closes its consumer cleanly), SIGKILL after timeout."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
            raise Check(f"{self.name}: still running {timeout}s after SIGTERM; killed")
        return code

    def kill(self):
        if self.alive():
            self.p.kill()
        self.wait(5)

    def tail(self, n=8):
        return " | ".join(self.stderr()[-n:])


PROCS = []


def spawn(name, argv, stdin_text=None):
    p = Proc(name, argv, stdin_text)
    PROCS.append(p)
    return p


def run(name, argv, stdin_text=None, timeout=60):
    """Run kcat to completion; returns the Proc (its exit status in .code)."""
    p = spawn(name, argv, stdin_text)
    code = p.wait(timeout)
    if code is None:
        p.kill()
        raise Check(f"{name}: no exit within {timeout}s; stderr: {p.tail()}")
    p.code = code
    return p


NOT_COMPRESSING = re.compile(r"Broker does not support compression type \w+: not compressing batch")


def kc_last_stderr():
    """stderr lines of the kcat process started last."""
    return PROCS[-1].stderr() if PROCS else []


def kill_all():
    for p in PROCS:
        if p.alive():
            p.kill()


# ---------------------------------------------------------------------------------------
# kcat operations


class Kcat:
    def __init__(self, binary, bootstrap, settings=()):
        self.bin = binary
        self.bs = bootstrap
        self.settings = list(settings)  # -X settings of every call (the security phase's listener)

    def base(self):
        return [self.bin, "-b", self.bs] + [a for s in self.settings for a in ("-X", s)]

    def version(self):
        out = subprocess.run([self.bin, "-V"], capture_output=True, text=True, timeout=10).stdout
        kv = re.search(r"^Version (\S+)", out, re.M)
        lv = re.search(r"librdkafka (\S+)", out)
        return f"kcat {kv.group(1) if kv else '?'} / librdkafka {lv.group(1) if lv else '?'}"

    def features(self):
        out = subprocess.run([self.bin, "-V"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"builtin\.features=(\S+?)\)?$", out, re.M)
        return set(m.group(1).rstrip(")").split(",")) if m else set()

    def ensure_topic(self, topic, timeout=20):
        """`kcat -L -t` until the topic (auto-created by the metadata request) has six
        partitions with a leader each and no error. Returns the listing."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            p = run("metadata", self.base() + ["-L", "-t", topic], timeout=15)
            last = "\n".join(p.stdout()) + " " + p.tail()
            m = re.search(r'^\s*topic "' + re.escape(topic) + r'" with (\d+) partitions:(.*)$', last, re.M)
            leaders = re.findall(r"^\s*partition (\d+), leader (\d+), replicas: [\d,]+, isrs: [\d,]+\s*$", last, re.M)
            if p.code == 0 and m and m.group(1) == str(PARTITIONS) and not m.group(2).strip():
                if sorted(int(x) for x, _ in leaders) == list(range(PARTITIONS)):
                    return last
            if time.monotonic() > deadline:
                raise Check(f"kcat -L: topic {topic} not listed with {PARTITIONS} led partitions: {last[-400:]}")
            time.sleep(0.2)

    def produce(self, name, topic, msgs, extra=(), sent=None):
        """Keyed produce with acks=all; returns {partition: [offsets in delivery order]}.

        With a `sent` list, librdkafka's msg debug lines are turned on and each
        "Produce MessageSet with N message(s) (..., CODEC)" is appended to it as
        (N, CODEC): what the client really put on the wire."""
        text = "".join(f"{k}:{v}\n" for k, v in msgs)
        argv = self.base() + ["-P", "-t", topic, "-K:", "-vv", "-X", "acks=all"]
        if sent is not None:
            argv += ["-d", "msg"]
        for x in extra:
            argv += ["-X", x]
        p = run(name, argv, stdin_text=text, timeout=60)
        err = p.stderr()
        if sent is not None:
            for line in err:
                m = re.search(r"Produce MessageSet with (\d+) message\(s\) \(.*, (\w+)\)\s*$", line)
                if m:
                    sent.append((int(m.group(1)), m.group(2)))
        failed = [line for line in err if "Delivery failed" in line or "ERROR" in line]
        delivered = {}
        for line in err:
            m = re.search(r"Message delivered to partition (\d+) \(offset (-?\d+)\)", line)
            if m:
                delivered.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        count = sum(len(v) for v in delivered.values())
        ensure(p.code == 0 and not failed, f"{name}: exit {p.code}, {failed[:3] or p.tail()}")
        ensure(count == len(msgs), f"{name}: {count} delivery reports for {len(msgs)} messages")
        return delivered

    def read_back(self, name, topic, timeout=30):
        """Every partition from the beginning to its end, no group: list of records."""
        p = run(name, self.base() + ["-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"], timeout=timeout)
        ensure(p.code == 0, f"{name}: kcat -C exit {p.code}: {p.tail()}")
        return [r for r in map(parse_json, p.stdout()) if r is not None]


def parse_json(line):
    try:
        j = json.loads(line)
    except ValueError:
        return None
    if not isinstance(j, dict) or "partition" not in j:
        return None
    return {"partition": j["partition"], "offset": j["offset"], "key": j.get("key"), "value": j.get("payload")}


def rec_key(r):
    return (r["partition"], r["offset"], r["key"], r["value"])


def batch(prefix, n, pad=""):
    return [(f"key-{i % KEYS}", f"{prefix}:{i}{pad}") for i in range(n)]


# Codec messages carry a compressible tail: librdkafka sends a batch uncompressed when
# compression would not make it smaller, which tiny values never are.
PAD = ":" + "compressible " * 24


def same_records(what, want, got):
    """got holds exactly want's records, each once, increasing offsets per partition."""
    last = {}
    for r in got:
        p = r["partition"]
        ensure(p not in last or r["offset"] > last[p], f"{what}: partition {p} out of order at offset {r['offset']}")
        last[p] = r["offset"]
    seen = {}
    for r in got:
        seen[rec_key(r)] = seen.get(rec_key(r), 0) + 1
    dups = [k for k, c in seen.items() if c > 1]
    ensure(not dups, f"{what}: {len(dups)} records received more than once, first {dups[:1]}")
    want_set = {rec_key(r) for r in want}
    missing = sorted(want_set - set(seen))
    extra = sorted(set(seen) - want_set)
    ensure(
        not missing and not extra,
        f"{what}: {len(missing)} of {len(want_set)} missing (first {missing[:1]}), {len(extra)} unexpected (first {extra[:1]})",
    )


def once_in_order(what, prefix, n, got):
    """Values prefix:0..n-1 each exactly once, keys right, in sequence order per partition."""
    mine = sorted((r for r in got if str(r["value"]).startswith(prefix + ":")), key=lambda r: (r["partition"], r["offset"]))
    count, last = {}, {}
    for r in mine:
        seq = int(r["value"].split(":")[1])
        count[seq] = count.get(seq, 0) + 1
        ensure(r["key"] == f"key-{seq % KEYS}", f"{what}: {r['value']} has key {r['key']!r}")
        p = r["partition"]
        ensure(p not in last or seq > last[p], f"{what}: partition {p} holds {prefix}:{seq} after {prefix}:{last.get(p)}")
        last[p] = seq
    dups = sorted(s for s, c in count.items() if c > 1)
    ensure(not dups, f"{what}: duplicated {prefix} messages {dups[:10]}")
    missing = [s for s in range(n) if s not in count]
    ensure(not missing, f"{what}: {prefix} messages missing {missing[:10]}")
    return mine


def matches_deliveries(what, delivered, recs):
    """The offsets of the delivery reports are exactly the offsets of the records read back."""
    by_p = {}
    for r in recs:
        by_p.setdefault(r["partition"], []).append(r["offset"])
    want = {p: sorted(v) for p, v in delivered.items()}
    got = {p: sorted(v) for p, v in by_p.items()}
    ensure(want == got, f"{what}: delivery reports name other offsets than the records read back")


def end_offsets(recs):
    end = {p: 0 for p in range(PARTITIONS)}
    for r in recs:
        end[r["partition"]] = max(end[r["partition"]], r["offset"] + 1)
    return end


# ---------------------------------------------------------------------------------------
# Group members


REBALANCE = re.compile(r"^% Group (\S+) rebalanced \(memberid ([^)]*)\): (assigned|revoked): ?(.*)$")
AT_END = re.compile(r"^% Reached end of topic (\S+) \[(\d+)\] at offset (\d+)")


class Member:
    """A `kcat -G` process and what its stderr says about its assignment."""

    def __init__(self, kc, name, group, topic, settings, extra_args=()):
        self.name, self.group, self.topic = name, group, topic
        argv = kc.base() + ["-G", group, "-J", "-u", *extra_args, "-X", f"client.id={name}"]
        for s in settings:
            argv += ["-X", s]
        argv.append(topic)
        self.proc = spawn(name, argv)

    def events(self):
        """[(kind, set of partitions)] in order."""
        ev = []
        for line in self.proc.stderr():
            m = REBALANCE.match(line)
            if m and m.group(1) == self.group:
                parts = {int(p) for t, p in re.findall(r"(\S+) \[(\d+)\]", m.group(4)) if t == self.topic}
                ev.append((m.group(3), parts))
        return ev

    def assigns(self):
        return sum(1 for kind, _ in self.events() if kind == "assigned")

    def assignment(self):
        cur = set()
        for kind, parts in self.events():
            cur = set(parts) if kind == "assigned" else set()
        return cur

    def records(self):
        return [r for r in map(parse_json, self.proc.stdout()) if r is not None]

    def at_end(self):
        """{partition: offset} from the "Reached end of topic" lines."""
        out = {}
        for line in self.proc.stderr():
            m = AT_END.match(line)
            if m and m.group(1) == self.topic:
                out[int(m.group(2))] = int(m.group(3))
        return out


def covers_disjoint(sets):
    total = sum(len(s) for s in sets)
    union = set().union(*sets) if sets else set()
    return all(sets) and total == len(union) and union == set(range(PARTITIONS))


def wait_assigned(what, members, timeout, extra=lambda: True):
    deadline = time.monotonic() + timeout
    while True:
        sets = [m.assignment() for m in members]
        if covers_disjoint(sets) and extra():
            say(f"{what}: {[sorted(s) for s in sets]}")
            return sets
        dead = [m.name for m in members if not m.proc.alive()]
        if dead or time.monotonic() > deadline:
            detail = "; ".join(f"{m.name}: {m.proc.tail(4)}" for m in members)
            raise Check(
                f"{what}: no disjoint assignment of all {PARTITIONS} partitions within {timeout}s "
                f"(exited: {dead}); assignments {[sorted(s) for s in sets]}; stderr: {detail}"
            )
        time.sleep(0.05)


SESSION_TIMEOUT = 10  # seconds, session.timeout.ms of every member
LEAVE_TIMEOUT = 8  # seconds for the rest to re-form after a LeaveGroup (< the session timeout)
# Members of --group: librdkafka's auto commit of what kcat printed (module docstring).
AUTO_COMMIT = [
    "enable.auto.offset.store=true",
    "auto.offset.reset=earliest",
    f"session.timeout.ms={SESSION_TIMEOUT * 1000}",
    "heartbeat.interval.ms=500",
]
# Members that must not commit: no offset is ever stored, so auto commit has nothing to do.
NO_COMMIT = ["enable.auto.offset.store=false", f"session.timeout.ms={SESSION_TIMEOUT * 1000}", "heartbeat.interval.ms=500"]


# ---------------------------------------------------------------------------------------
# Phase one


def phase_one(kc, args, report):
    topic, group = args.topic, args.group
    members = []
    three = None
    try:
        kc.ensure_topic(topic)
        topic_err = None
    except Check as e:
        topic_err = e

    # The three members join before anything is produced.
    group_err = None
    if topic_err is None:
        try:
            for i in (1, 2, 3):
                members.append(Member(kc, f"member-{i}", group, topic, AUTO_COMMIT))
            three = wait_assigned("3 members", members, 30)
        except Check as e:
            group_err = e

    # produce + idempotence, read back without a group
    one_dr = idem_dr = back = None
    produce_err = idem_err = None
    try:
        if topic_err:
            raise topic_err
        one_dr = kc.produce("produce-600", topic, batch("one", N_ONE))
    except Check as e:
        produce_err = e
    try:
        if topic_err:
            raise topic_err
        idem_dr = kc.produce("produce-idem", topic, batch("idem", N_IDEM), ["enable.idempotence=true"])
    except Check as e:
        idem_err = e
    try:
        back = kc.read_back("read-back", topic)
    except Check as e:
        produce_err = produce_err or e
        idem_err = idem_err or e

    def produce_check():
        if produce_err:
            raise produce_err
        ones = once_in_order("read back (kcat -C)", "one", N_ONE, back)
        matches_deliveries("one", one_dr, ones)
        ensure(
            all(sorted(v) == list(range(len(v))) for v in one_dr.values()),
            "acknowledged offsets are not 0.. of each partition",
        )
        return (
            f"{N_ONE} keyed messages with kcat -P -K: (acks=all), {N_ONE} delivery reports at offsets 0.. of "
            f"each partition; read back exactly with kcat -C -o beginning -e; kcat -L lists {topic} with "
            f"{PARTITIONS} led partitions (kcat has no admin client: no topic creation check)"
        )

    def idem_check():
        if idem_err:
            raise idem_err
        idems = once_in_order("idempotent messages read back", "idem", N_IDEM, back)
        matches_deliveries("idem", idem_dr, idems)
        return f"-X enable.idempotence=true: {N_IDEM} messages acknowledged, each read back once, in order per partition"

    report.decide("produce", produce_check)
    report.decide("idempotence", idem_check)

    def compression_check():
        features = kc.features()
        tried, failures = [], []
        for codec in CODECS:
            if features and codec not in features:
                failures.append(f"{codec}: not in kcat's librdkafka builtin.features")
                continue
            tried.append(codec)
            t = f"compat-{CLIENT}-{codec}"
            try:
                sent = []
                dr = kc.produce(
                    f"produce-{codec}",
                    t,
                    batch(codec, N_CODEC, PAD),
                    [f"compression.codec={codec}", "linger.ms=50"],
                    sent=sent,
                )
                # The round trip alone proves nothing: librdkafka falls back to sending a
                # batch uncompressed when it believes the broker lacks the codec.
                plain = sum(n for n, c in sent if c != codec)
                why = next((m.group(0) for m in map(NOT_COMPRESSING.search, kc_last_stderr()) if m), None)
                ensure(
                    sum(n for n, _ in sent) == N_CODEC and plain == 0,
                    f"librdkafka sent {plain} of {N_CODEC} messages uncompressed"
                    + (f' ("{why}")' if why else f" (batches as sent: {sent})"),
                )
                got = kc.read_back(f"read-back-{codec}", t)
                recs = once_in_order(t, codec, N_CODEC, got)
                ensure(len(recs) == len(got), f"{t}: unexpected records besides the {N_CODEC} sent")
                matches_deliveries(t, dr, recs)
            except Check as e:
                failures.append(f"{codec}: {e}")
        if any("does not support compression type" in f for f in failures):
            failures.append(
                "librdkafka 2.0.2 enables gzip/snappy/lz4 only if ApiVersions lists Produce v0 "
                "(Apache Kafka 4 lists Produce v0-v2 for that reason, KAFKA-18659; librdkafka 2.12 is not affected)"
            )
        ensure(not failures, "; ".join(failures))
        return (
            f"tried {', '.join(tried)} (-X compression.codec): each {N_CODEC} messages sent compressed "
            "(librdkafka's msg debug log) and read back exactly"
        )

    report.decide("compression", compression_check)

    # consume: the three members print everything produced so far.
    expected = [r for r in (back or []) if str(r["value"]).split(":")[0] in ("one", "idem")]
    end = end_offsets(expected)

    def consume_check():
        if group_err:
            raise Check(f"group never formed: {group_err}")
        if produce_err:
            raise Check(f"nothing to consume: {produce_err}")
        want = N_ONE + N_IDEM
        ensure(len(expected) == want, f"read back {len(expected)} of the {want} messages, cannot judge")
        deadline = time.monotonic() + 60
        while sum(len(m.records()) for m in members) < want and time.monotonic() < deadline:
            time.sleep(0.05)
        # A duplicate already on its way shows up within this window.
        time.sleep(0.5)
        got = []
        for m in members:
            recs = m.records()
            assigned = m.assignment()
            outside = [r for r in recs if r["partition"] not in assigned]
            ensure(not outside, f"{m.name} printed {len(outside)} messages outside its assignment {sorted(assigned)}")
            same_records(f"{m.name} (own partitions)", [r for r in expected if r["partition"] in assigned], recs)
            got += recs
        same_records("consumed by the group", expected, got)
        return (
            f"3 kcat -G members received all {want} messages exactly once (kcat cannot turn auto commit off or "
            "commit explicitly: librdkafka auto-commits what kcat printed, on revoke and on close at SIGTERM)"
        )

    consumed = report.decide("consume", consume_check)

    # groups: member-3 leaves (SIGTERM: commit of what it printed, LeaveGroup), the other
    # two get its partitions; they are revoked first, which commits their offsets.
    def groups_check():
        if group_err:
            raise group_err
        before = [m.assigns() for m in members[:2]]
        printed_before = sum(len(m.records()) for m in members)
        closed_at = time.monotonic()
        code = members[2].proc.terminate()
        ensure(code == 0, f"member-3 exited with {code} on SIGTERM: {members[2].proc.tail()}")
        # Sooner than member-3's session could expire: its LeaveGroup did it.
        two = wait_assigned(
            "2 members after member-3 left",
            members[:2],
            max(0.0, closed_at + LEAVE_TIMEOUT - time.monotonic()),
            extra=lambda: all(m.assigns() > b for m, b in zip(members[:2], before)),
        )
        return (
            f"3 members {[sorted(s) for s in three]}; after one left (SIGTERM: close, LeaveGroup) "
            f"2 members {[sorted(s) for s in two]}"
        ), printed_before

    printed_before = None
    try:
        note, printed_before = groups_check()
        report.set("groups", "pass", note)
    except Check as e:
        report.set("groups", "fail", str(e))

    # Close the other two (commit on close), then read the committed offsets back.
    state = {"topic": topic, "group": group, "committed": {}, "two": []}
    commit_problems = []
    for m in members[:2]:
        if m.proc.alive():
            try:
                code = m.proc.terminate()
                if code != 0:
                    commit_problems.append(f"{m.name} exited with {code} on SIGTERM: {m.proc.tail()}")
            except Check as e:
                commit_problems.append(str(e))
    if printed_before is not None:
        after = sum(len(m.records()) for m in members)
        if after != printed_before:
            report.set(
                "groups",
                "fail",
                f"{after - printed_before} messages delivered again after the rebalance (commit on revoke not honoured?)",
            )
    if consumed:
        try:
            probe = Member(
                kc,
                "offset-probe",
                group,
                topic,
                NO_COMMIT + ["auto.offset.reset=error"],
                extra_args=["-e"],
            )
            code = probe.proc.wait(30)
            if code is None:
                probe.proc.kill()
                raise Check(f"offset probe did not reach the end of all partitions in 30s: {probe.proc.tail()}")
            ensure(code == 0, f"offset probe (auto.offset.reset=error) failed with {code}: {probe.proc.tail()}")
            printed = probe.records()
            ensure(not printed, f"offset probe received {len(printed)} messages past the commit, first {printed[:1]}")
            committed = probe.at_end()
            ensure(
                committed == end,
                f"committed offsets seen by the probe {committed} differ from the consumed end offsets {end}",
            )
            state["committed"] = {str(p): o for p, o in sorted(committed.items())}
            say(f"committed offsets {committed}")
        except Check as e:
            commit_problems.append(str(e))
    else:
        commit_problems.append("nothing committed: consume failed")
    try:
        dr = kc.produce("produce-300", topic, batch("two", N_TWO))
        back2 = kc.read_back("read-back-2", topic)
        twos = once_in_order("the 300 'two' messages", "two", N_TWO, back2)
        matches_deliveries("two", dr, twos)
        state["two"] = twos
    except Check as e:
        commit_problems.append(f"producing the 300 'two' messages: {e}")
    if commit_problems:
        report.set("commit_resume", "fail", "phase one: " + "; ".join(commit_problems))
    with open(args.state, "w") as f:
        json.dump(state, f, indent=1)

    report.decide("static_membership", lambda: static_membership(kc, args))


def static_membership(kc, args):
    group, topic = f"{args.group}-static", args.topic
    settings = NO_COMMIT
    a = Member(kc, "static-a", group, topic, settings + ["group.instance.id=a"])
    b = Member(kc, "static-b", group, topic, settings + ["group.instance.id=b"])
    sets = wait_assigned("static a+b", [a, b], 30)
    a_parts, b_parts = sets
    b_events = len(b.events())

    # librdkafka sends no LeaveGroup when a static member closes.
    stopped = time.monotonic()
    code = a.proc.terminate()
    ensure(code == 0, f"static-a exited with {code} on SIGTERM")
    a2 = Member(kc, "static-a-again", group, topic, settings + ["group.instance.id=a"])
    deadline = time.monotonic() + 8
    while not a2.assignment():
        ensure(a2.proc.alive(), f"rejoining 'a' exited: {a2.proc.tail()}")
        ensure(time.monotonic() < deadline, f"rejoining 'a' got no assignment within 8 s: {a2.proc.tail()}")
        time.sleep(0.05)
    ensure(a2.assignment() == a_parts, f"rejoined 'a' got {sorted(a2.assignment())}, had {sorted(a_parts)}")
    # No rebalance reaches 'b', neither when 'a' comes back nor when the old 'a''s session
    # would have expired: hold until past it (2 s margin, four heartbeat intervals).
    hold = stopped + SESSION_TIMEOUT + 2
    while time.monotonic() < hold:
        ensure(
            len(b.events()) == b_events and b.assignment() == b_parts and a2.assignment() == a_parts,
            f"'b' or the rejoined 'a' was rebalanced {time.monotonic() - stopped:.1f}s after the old 'a' closed: "
            f"b's events since {b.events()[b_events:]}, a now {sorted(a2.assignment())}",
        )
        time.sleep(0.05)

    # A second 'b' while 'b' is alive: one of them is fenced (librdkafka: fatal error, kcat exits).
    b2 = Member(kc, "static-b-duplicate", group, topic, settings + ["group.instance.id=b"])
    deadline = time.monotonic() + 15
    fenced = None
    while fenced is None:
        for m, label in ((b, "old 'b'"), (b2, "new 'b'")):
            if not m.proc.alive() and any("fenced" in line.lower() for line in m.proc.stderr()):
                line = next(line for line in m.proc.stderr() if "fenced" in line.lower())
                m2 = re.search(r"Broker: [^:]*fenced[^:]*", line, re.I)
                fenced = (label, m2.group(0) if m2 else line.strip())
        if fenced is None:
            dead = [m.name for m in (b, b2) if not m.proc.alive()]
            ensure(not dead, f"{dead} exited without a fenced error: {b.proc.tail(3)} / {b2.proc.tail(3)}")
            ensure(time.monotonic() < deadline, "neither consumer with group.instance.id=b was fenced within 15 s")
            time.sleep(0.05)
    for m in (a2, b, b2):
        if m.proc.alive():
            m.proc.terminate()
    return (
        f"a {sorted(a_parts)} b {sorted(b_parts)}; 'a' closed (no LeaveGroup) and rejoined with the same "
        f"partitions, 'b' not rebalanced through the old 'a''s session timeout; duplicate 'b': {fenced[0]} fenced "
        f"({fenced[1][:120]})"
    )


# ---------------------------------------------------------------------------------------
# Phase two


def phase_two(kc, args, report):
    def commit_resume():
        with open(args.state) as f:
            state = json.load(f)
        two = state.get("two") or []
        committed = {int(p): o for p, o in (state.get("committed") or {}).items()}
        ensure(len(two) == N_TWO, f"the state holds {len(two)} 'two' messages, want {N_TWO} (phase one failed?)")
        ensure(len(committed) == PARTITIONS, f"the state holds committed offsets for {sorted(committed)} only")
        m = Member(
            kc,
            "resumer",
            args.group,
            args.topic,
            NO_COMMIT + ["auto.offset.reset=error"],
            extra_args=["-e"],
        )
        code = m.proc.wait(60)
        if code is None:
            m.proc.kill()
            raise Check(f"resumer did not reach the end of all partitions in 60s: {m.proc.tail()}")
        ensure(code == 0, f"resumer (auto.offset.reset=error) failed with {code}: {m.proc.tail()}")
        got = m.records()
        start = {}
        for r in got:
            start.setdefault(r["partition"], r["offset"])
        ends = m.at_end()
        for p in range(PARTITIONS):
            # Where the member started: its first message, or the end if it had none.
            s = start.get(p, ends.get(p))
            ensure(s == committed[p], f"partition {p}: resumed at offset {s}, committed in phase one {committed[p]}")
        want_keys = {rec_key(r) for r in two}
        before = [r for r in got if rec_key(r) not in want_keys]
        ensure(not before, f"{len(before)} messages that are not among the 300 uncommitted ones, first {before[:1]}")
        same_records("resumed after the restart", two, got)
        want_end = dict(committed)
        for r in two:
            want_end[r["partition"]] = max(want_end[r["partition"]], r["offset"] + 1)
        ensure(ends == want_end, f"end of partitions reached at {ends}, want {want_end}")
        return (
            f"committed offsets {committed} survived the restart; a kcat -G member with auto.offset.reset=error "
            f"started exactly there and received exactly the {N_TWO} uncommitted messages"
        )

    report.decide("commit_resume", commit_resume)


def phase_security(binary, args, report):
    """sasl_scram and mtls: N_SECURE keyed messages produced and read back over each listener."""
    listeners = [
        (
            "sasl_scram",
            "sasl",
            args.sasl_bootstrap,
            [
                "security.protocol=SASL_SSL",
                "sasl.mechanisms=SCRAM-SHA-512",
                f"sasl.username={args.scram_user}",
                f"sasl.password={args.scram_password}",
                f"ssl.ca.location={args.ca}",
            ],
            f"SASL_SSL, SCRAM-SHA-512 as {args.scram_user}",
        ),
        (
            "mtls",
            "mtls",
            args.mtls_bootstrap,
            [
                "security.protocol=SSL",
                f"ssl.ca.location={args.ca}",
                f"ssl.certificate.location={args.client_cert}",
                f"ssl.key.location={args.client_key}",
            ],
            "SSL with a client certificate (ssl.client.auth=required)",
        ),
    ]
    for cap, kind, bootstrap, settings, how in listeners:
        kc = Kcat(binary, bootstrap, settings)

        def check():
            topic = f"{args.topic}-{kind}"
            delivered = kc.produce(f"{kind} produce", topic, batch(kind, N_SECURE))
            back = kc.read_back(f"{kind} read back", topic)
            mine = once_in_order(f"{kind} read back (kcat -C)", kind, N_SECURE, back)
            ensure(len(mine) == len(back), f"{kind}: {len(back) - len(mine)} records that were not produced here")
            matches_deliveries(kind, delivered, mine)
            return f"{N_SECURE} keyed messages with kcat -P, read back exactly with kcat -C, over {how}"

        report.decide(cap, check)


# ---------------------------------------------------------------------------------------


class Report:
    def __init__(self, version, phase):
        self.version = version
        self.phase = phase
        self.checks, self.notes = {}, {}
        self.lock = threading.Lock()
        self.printed = False

    def set(self, cap, result, note):
        with self.lock:
            say(f"{cap}: {result} ({note})")
            self.checks[cap], self.notes[cap] = result, note

    def decide(self, cap, fn):
        """Runs fn; its return value is the pass note, a Check its fail note."""
        try:
            note = fn()
        except Check as e:
            self.set(cap, "fail", str(e))
            return False
        except Exception as e:  # a bug here must still produce a COMPAT line
            self.set(cap, "fail", f"{type(e).__name__}: {e}")
            return False
        self.set(cap, "pass", note)
        return True

    def emit(self, missing_note):
        with self.lock:
            if self.printed:
                return
            for cap in PHASE_CAPS[self.phase]:
                if cap not in self.checks:
                    self.checks[cap], self.notes[cap] = "fail", missing_note
            line = {"client": CLIENT, "version": self.version, "checks": self.checks, "notes": self.notes}
            print("COMPAT " + json.dumps(line), flush=True)
            self.printed = True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--phase", required=True, choices=sorted(PHASE_CAPS))
    ap.add_argument("--state", required=True)
    # The security phase's listeners and credentials (CONTRACT.md).
    for flag in ("--sasl-bootstrap", "--mtls-bootstrap", "--ca", "--client-cert", "--client-key"):
        ap.add_argument(flag)
    ap.add_argument("--scram-user")
    ap.add_argument("--scram-password")
    ap.add_argument("--deadline", type=float, default=170, help="seconds before giving up (default 170)")
    args = ap.parse_args()

    binary = shutil.which("kcat")
    if not binary:
        report = Report("kcat not found", args.phase)
        report.emit("kcat not found on PATH (scripts/test-all.sh installs it)")
        return 1
    kc = Kcat(binary, args.bootstrap)
    report = Report(kc.version(), args.phase)
    say(f"{report.version}, phase {args.phase}, against {args.bootstrap}")

    def watchdog():
        kill_all()
        report.emit(f"not decided within the program's {args.deadline:.0f}s deadline")
        os._exit(1)

    timer = threading.Timer(args.deadline, watchdog)
    timer.daemon = True
    timer.start()
    try:
        if args.phase == "one":
            phase_one(kc, args, report)
        elif args.phase == "two":
            phase_two(kc, args, report)
        else:
            phase_security(binary, args, report)
    except Exception as e:  # noqa: BLE001 - report whatever broke, then the COMPAT line
        say(f"stopped by {type(e).__name__}: {e}")
        report.emit(f"not checked: the program stopped early ({type(e).__name__}: {e})")
    finally:
        timer.cancel()
        kill_all()
    report.emit("not checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
