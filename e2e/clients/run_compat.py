#!/usr/bin/env python3
"""Client compatibility suite: real Kafka clients against a real strom-broker.

For each client (see CONTRACT.md): start a fresh strom-broker on free loopback
ports with its own temp data dir, run the client's program for phase one,
restart the broker on the same ports and data dir, run phase two, then phase
security against the broker's SASL_SSL (SCRAM-SHA-512) and SSL (client certificate
required) listeners, stop the broker. Each phase's last stdout line is
`COMPAT {json}` with the capabilities it checked; the phases are merged into one row. Prints one PASS/FAIL line per
client and ends with "N passed, N failed"; exits 1 if any cell failed. A full
run (no --only) rewrites COMPATIBILITY.md at the repo root. Stdlib only.

    python3 e2e/clients/run_compat.py --broker target/debug/strom-broker [--only kcat]

scripts/test-all.sh prepares what the clients need (venvs under target/venvs/,
kcat, kafkajs's node_modules, the rdkafka program, the Java jars by
scripts/jvm-setup.sh) and runs this.
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import compat_doc
from harness import Broker, HarnessError, run_program

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")

# Columns of COMPATIBILITY.md: (capability key in the COMPAT line, column title).
CAPABILITIES = [
    ("produce", "produce"),
    ("consume", "consume"),
    ("groups", "groups"),
    ("commit_resume", "commit/resume"),
    ("static_membership", "static membership"),
    ("compression", "compression codecs"),
    ("idempotence", "idempotence"),
    ("sasl_scram", "SASL_SSL SCRAM-SHA-512"),
    ("mtls", "mutual TLS"),
    ("consumer_protocol", "consumer protocol (KIP-848)"),
]
# Columns beyond the contract's core: only the clients that list one in Client.extra_checks
# report it; the others' cells read "n/a (not checked)" and are not failures.
EXTRA_CAPABILITIES = {"consumer_protocol"}
# Columns where a program may answer "no": it asked the broker for the feature and got a
# clean "not supported" (the real error in the note). Not a failure; anywhere else "no" is.
MAY_BE_UNSUPPORTED = {"consumer_protocol"}
UNCHECKED = "unchecked"  # the driver's value for an extra column a client does not report

# "no" outranks pass (if any phase met "not supported", that is the answer) but not fail.
RANK = {UNCHECKED: -1, "n/a": 0, "pass": 1, "no": 2, "fail": 3}
CODECS = ("gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # record batch attributes, bits 0-2

BROKER_OVERRIDES = {
    "num.partitions": "6",  # auto-created topics get six partitions
    "group.initial.rebalance.delay.ms": "0",  # groups form without Kafka's 3 s wait
}
# Besides PLAINTEXT every broker serves SASL_SSL (SCRAM-SHA-512, the user below, created by
# `strom-broker format --add-scram` before the first start) and SSL with client certificates
# required; the certificates come from make_certs, once per run.
SECURE_LISTENERS = ("SASL_SSL", "SSL")
SCRAM_USER, SCRAM_PASSWORD = "compat-user", "compat-secret"


def security_overrides(certs):
    return {
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.ssl.keystore.location": certs.broker_keystore,
        "listener.name.ssl.ssl.keystore.location": certs.broker_keystore,
        "listener.name.ssl.ssl.truststore.location": certs.ca,
        "listener.name.ssl.ssl.client.auth": "required",
    }


@dataclass(frozen=True)
class Certs:
    """PEM files made by make_certs: keys are unencrypted PKCS#8."""

    ca: str  # the CA certificate, which signed both below
    broker_keystore: str  # the broker's key and certificate (SANs localhost, 127.0.0.1)
    client_cert: str  # CN=compat-client
    client_key: str


def make_certs(directory):
    """A CA, a broker certificate and a client certificate, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise HarnessError("openssl not found on PATH: the SASL_SSL and mutual TLS columns need it for certificates")

    def run(*argv):
        done = subprocess.run([openssl, *argv], cwd=directory, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise HarnessError(f"openssl {argv[0]} failed: {done.stderr.strip()[-500:]}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=strom-compat-ca")  # fmt: skip
    for name, subject, extensions in (
        ("broker", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "/CN=compat-client", "extendedKeyUsage=clientAuth\n"),
    ):
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" + extensions)
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    keystore = os.path.join(directory, "broker-keystore.pem")
    with open(keystore, "w") as out:
        for part in ("broker.key", "broker.pem"):
            with open(os.path.join(directory, part)) as f:
                out.write(f.read())
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    return Certs(path("ca.pem"), keystore, path("client.pem"), path("client.key"))


@dataclass(frozen=True)
class Client:
    """One row: how to build the client program's command line.

    interpreter: None when program is itself executable; "venv:NAME" for the
    python of target/venvs/NAME; otherwise a command on PATH (node, python3).
    program: path relative to the repo root; "{target}" is the cargo target dir.
    extra_checks: the EXTRA_CAPABILITIES this client's program reports.
    """

    name: str
    program: str
    interpreter: str | None = None
    args: tuple = ()
    prepared_by: str = "scripts/test-all.sh"
    extra_checks: tuple = ()

    def argv(self, venvs):
        program = os.path.join(ROOT, self.program.format(target=TARGET))
        if not os.path.exists(program):
            raise HarnessError(f"{program} missing; {self.prepared_by} prepares it")
        if self.interpreter is None:
            head = []
        elif self.interpreter.startswith("venv:"):
            python = os.path.join(venvs, self.interpreter[len("venv:") :], "bin", "python")
            if not os.path.exists(python):
                raise HarnessError(f"venv python {python} missing; {self.prepared_by} prepares it")
            head = [python, "-u"]
        else:
            found = shutil.which(self.interpreter)
            if not found:
                raise HarnessError(f"{self.interpreter} not found on PATH")
            head = [found]
        return head + [program, *self.args]


CLIENTS = [
    Client("confluent-kafka", "e2e/clients/compat_confluent_kafka.py", "venv:kafka3"),
    Client("kafka-python-3", "e2e/clients/compat_kafka_python.py", "venv:kafka3", ("--expect-major", "3")),
    Client("kafka-python-2", "e2e/clients/compat_kafka_python.py", "venv:kafka2", ("--expect-major", "2")),
    Client("aiokafka", "e2e/clients/compat_aiokafka.py", "venv:aiokafka"),
    Client("kafkajs", "e2e/clients/kafkajs/compat.js", "node"),
    Client("kcat", "e2e/clients/kcat_compat.py", "python3"),
    Client("rdkafka", "{target}/debug/strom-compat-rdkafka"),
    # One compiled program; the launcher puts kafka-clients 4.4.0 or 4.0.2 on the classpath.
    *(
        Client(
            f"java-{v}",
            "e2e/jvm/bin/java-compat",
            args=(v,),
            prepared_by="scripts/jvm-setup.sh",
            extra_checks=("consumer_protocol",),
        )
        for v in ("4.4", "4.0")
    ),
    Client("franz-go", "{target}/go/bin/compat-franz", prepared_by="scripts/go-setup.sh"),
    Client("sarama", "{target}/go/bin/compat-sarama", prepared_by="scripts/go-setup.sh"),
    Client("kafka-go", "{target}/go/bin/compat-kafkago", prepared_by="scripts/go-setup.sh"),
]


@dataclass
class Row:
    """A client's merged result over both phases."""

    client: Client
    version: str = "?"
    checks: dict = field(default_factory=dict)  # capability -> "pass" | "fail" | "n/a" | "no" | UNCHECKED
    notes: dict = field(default_factory=dict)  # capability -> note
    problems: list = field(default_factory=list)  # run-level failures (crash, timeout, broker death)
    info: list = field(default_factory=list)  # run-level notes that are not failures
    outputs: list = field(default_factory=list)  # (label, ProgramResult)
    broker_log: str = ""
    seconds: float = 0.0

    def merge(self, phase, report):
        """Fold one phase's COMPAT report in: fail wins over pass, pass over n/a."""
        self.version = report.get("version") or self.version
        notes = report.get("notes") or {}
        for cap, result in (report.get("checks") or {}).items():
            note = str(notes.get(cap, ""))
            if result not in RANK or result == UNCHECKED:
                result, note = "fail", f"unknown result {result!r}"
            elif result == "no" and cap not in MAY_BE_UNSUPPORTED:
                result, note = "fail", f"'no' (not supported) is not an accepted answer for {cap}: {note}"
            if result == "fail":
                note = f"phase {phase}: {note}"
            old = self.checks.get(cap)
            if old is None or RANK[result] > RANK[old]:
                self.checks[cap], self.notes[cap] = result, note
            elif result == old == "fail":
                self.notes[cap] += "; " + note
            elif result == old and not self.notes.get(cap):
                self.notes[cap] = note

    def finish(self):
        """Capabilities no phase reported are failures (crash, timeout, missing COMPAT line).

        An extra column the client does not report is UNCHECKED instead.
        """
        for cap, _ in CAPABILITIES:
            if cap in EXTRA_CAPABILITIES and cap not in self.client.extra_checks and cap not in self.checks:
                self.checks[cap] = UNCHECKED
            elif cap not in self.checks:
                self.checks[cap] = "fail"
                self.notes[cap] = "not reported: " + ("; ".join(self.problems) or "the program never checked it")

    def failing(self):
        return [cap for cap, _ in CAPABILITIES if self.checks.get(cap) == "fail"]

    def unsupported(self):
        return [cap for cap, _ in CAPABILITIES if self.checks.get(cap) == "no"]

    def ok(self):
        return not self.failing() and not self.problems


def parse_compat(result):
    """The COMPAT report from a program's stdout (its last such line), or None."""
    for line in reversed(result.stdout_lines()):
        if line.startswith("COMPAT "):
            try:
                report = json.loads(line[len("COMPAT ") :])
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) else None
    return None


def run_phase(row, phase, argv, broker, args):
    """Run one phase of a client's program and merge its report into row."""
    try:
        result = run_program(argv + ["--phase", phase], timeout=args.phase_timeout, cwd=ROOT)
    except HarnessError as e:
        row.problems.append(f"phase {phase}: {e}")
        return
    row.outputs.append((f"phase {phase}", result))
    report = parse_compat(result)
    if result.returncode is None:
        row.problems.append(f"phase {phase}: timed out after {args.phase_timeout:.0f}s (process group killed)")
    elif report is None:
        row.problems.append(f"phase {phase}: exit status {result.returncode} without a COMPAT line")
    if report is not None:
        row.merge(phase, report)
    problem = broker.exit_problem()
    if problem:
        row.problems.append(f"phase {phase}: {problem} while the client ran")


def stored_codecs(data_dir, topic):
    """How many record batches the broker stored for topic, per codec, read from its segment files.

    Stored batches are what the producer sent, so this shows whether a client really
    compressed: some clients silently send a batch uncompressed (e.g. when they believe
    the broker lacks the codec), and such a batch still round-trips.
    """
    names = {v: k for k, v in CODEC_IDS.items()}
    found = Counter()
    for path in glob.glob(os.path.join(data_dir, glob.escape(topic) + "-[0-9]*", "*.log")):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        # Batch header: baseOffset i64, batchLength i32, leaderEpoch i32, magic i8, crc u32, attributes i16.
        while pos + 23 <= len(data):
            length = struct.unpack_from(">i", data, pos + 8)[0]
            if length <= 0:
                break
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            found[names.get(attributes & 0x07, f"codec id {attributes & 0x07}")] += 1
            pos += 12 + length
    return found


def check_stored_compression(row, data_dir):
    """Fail a passed compression cell if a codec's topic holds batches stored without that codec."""
    if row.checks.get("compression") != "pass":
        return
    problems = []
    for codec in CODECS:
        found = stored_codecs(data_dir, f"compat-{row.client.name}-{codec}")
        wrong = {name: n for name, n in found.items() if name != codec}
        if wrong:
            problems.append(f"{codec}: the broker stored {sum(wrong.values())} of {sum(found.values())} batches as {wrong}")
    if problems:
        row.checks["compression"] = "fail"
        row.notes["compression"] = "round trip ok, but not compressed as asked: " + "; ".join(problems)


def run_client(client, args):
    """Both phases of one client against one broker; always stops the broker."""
    row = Row(client)
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix=f"strom-compat-{client.name}-")
    broker = Broker(
        args.broker,
        workdir,
        overrides={**BROKER_OVERRIDES, **security_overrides(args.certs)},
        listeners=SECURE_LISTENERS,
        format_args=("--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"),
        ready_timeout=args.ready_timeout,
        stop_timeout=args.stop_timeout,
    )
    try:
        argv = client.argv(args.venvs)
        broker.start()
        argv += [
            "--bootstrap", broker.bootstrap,
            "--topic", f"compat-{client.name}",
            "--group", f"compat-{client.name}",
            "--state", os.path.join(workdir, "state.json"),
        ]  # fmt: skip
        run_phase(row, "one", argv, broker, args)
        if broker.alive():
            broker.restart()
            run_phase(row, "two", argv, broker, args)
        if broker.alive():
            run_phase(row, "security", argv + security_args(broker, args.certs), broker, args)
    except HarnessError as e:
        row.problems.append(str(e))
    finally:
        broker.stop()
        check_stored_compression(row, broker.data_dir)
        row.broker_log = broker.log()
        row.problems += broker.problems
        row.info += broker.notes
        if args.keep_temp:
            row.info.append(f"temp dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    row.finish()
    row.seconds = time.monotonic() - start
    return row


def security_args(broker, certs):
    """The security phase's extra arguments (CONTRACT.md)."""
    return [
        "--sasl-bootstrap", broker.listener_bootstrap("SASL_SSL"),
        "--mtls-bootstrap", broker.listener_bootstrap("SSL"),
        "--ca", certs.ca,
        "--client-cert", certs.client_cert,
        "--client-key", certs.client_key,
        "--scram-user", SCRAM_USER,
        "--scram-password", SCRAM_PASSWORD,
    ]  # fmt: skip


def tail(text, lines):
    parts = text.rstrip("\n").splitlines()
    cut = parts[-lines:]
    prefix = [f"[... {len(parts) - len(cut)} earlier lines]"] if len(parts) > len(cut) else []
    return "\n".join(prefix + cut)


def indent(text, pad="    | "):
    return "\n".join(pad + line for line in text.splitlines()) if text else pad + "(empty)"


def print_row(row, args):
    name = row.client.name
    if row.ok():
        print(f"PASS {name} ({row.seconds:.1f}s) {row.version}", flush=True)
    else:
        cells = ", ".join(row.failing()) or "no cell, but the run had problems"
        print(f"FAIL {name} ({row.seconds:.1f}s) {row.version}: failing: {cells}", flush=True)
    by_note = {}  # one line per distinct reason, naming every cell it failed
    for cap in row.failing():
        by_note.setdefault(row.notes.get(cap, ""), []).append(cap)
    for note, caps in by_note.items():
        print(f"  {', '.join(caps)}: {note}")
    for cap in row.unsupported():
        print(f"  not supported by the broker (not a failure): {cap}: {row.notes.get(cap, '')}")
    for problem in row.problems:
        print(f"  problem: {problem}")
    for note in row.info:
        print(f"  note: {note}")
    if not row.ok() or args.verbose:
        for label, result in row.outputs:
            print(f"  {label} output ({result.seconds:.1f}s, exit {result.returncode}):")
            print(indent(tail(result.combined(), args.tail_lines)))
        print("  broker log:")
        print(indent(tail(row.broker_log, args.tail_lines)))
    sys.stdout.flush()


def cell_text(row, cap, footnotes):
    result = row.checks[cap]
    note = row.notes.get(cap, "")
    if result == "pass":
        if cap == "compression":
            # The column lists the codecs that round-tripped, as the program's note names them.
            codecs = [c for c in CODECS if re.search(rf"\b{c}\b", note)]
            return f"pass ({', '.join(codecs)})" if codecs else "pass"
        return "pass"
    if result == UNCHECKED:
        return "n/a (not checked)"
    footnotes.append(f"{row.client.name}, {cap}: {note or 'no detail given'}")
    label = {"fail": "FAIL", "no": "not yet"}.get(result, "n/a")
    return f"{label} [{len(footnotes)}]"


def write_compatibility(rows, started):
    headers = ["Client", "Version"] + [title for _, title in CAPABILITIES]
    lines = [
        "## Client libraries",
        "",
        "Generated by `e2e/clients/run_compat.py` (run by `scripts/test-all.sh`); do not edit this section by hand.",
        f"Run started {started:%Y-%m-%d %H:%M:%S} UTC. What each column checks: `e2e/README.md`.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    footnotes = []
    for row in rows:
        cells = [row.client.name, row.version.replace("|", "/")]
        cells += [cell_text(row, cap, footnotes) for cap, _ in CAPABILITIES]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |")
    if footnotes:
        lines.append("")
        lines += [f"{i}. {text}".replace("\n", " ") for i, text in enumerate(footnotes, 1)]
    problems = [f"- {row.client.name}: {p}" for row in rows for p in row.problems]
    if problems:
        lines += ["", "Run problems:", ""] + problems
    path = compat_doc.replace_section("clients", lines)
    print(f"wrote the clients section of {path}", flush=True)


def select(args, parser):
    if not args.only:
        return CLIENTS
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    known = [c.name for c in CLIENTS]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown client(s) {unknown}; known: {known}")
    return [c for c in CLIENTS if c.name in names]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", help="path to the strom-broker binary")
    ap.add_argument("--venvs", default=os.path.join(TARGET, "venvs"), help="dir holding the venvs")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this client (repeatable, or comma-separated); leaves COMPATIBILITY.md alone",
    )
    ap.add_argument("--list", action="store_true", help="print the client names and exit")
    ap.add_argument("--ready-timeout", type=float, default=30, help="seconds for /ready (default 30)")
    ap.add_argument("--phase-timeout", type=float, default=180, help="seconds per phase (default 180)")
    ap.add_argument("--stop-timeout", type=float, default=10, help="seconds from SIGTERM to SIGKILL")
    ap.add_argument("--tail-lines", type=int, default=60, help="lines of output shown on failure")
    ap.add_argument("--keep-temp", action="store_true", help="keep each broker's temp dir")
    ap.add_argument("-v", "--verbose", action="store_true", help="show output of passing clients too")
    args = ap.parse_args()

    if args.list:
        for c in CLIENTS:
            print(c.name)
        return 0
    if not args.broker:
        ap.error("--broker is required")
    args.broker = os.path.abspath(args.broker)
    if not os.access(args.broker, os.X_OK):
        ap.error(f"broker binary not found or not executable: {args.broker}")
    selected = select(args, ap)

    # SIGTERM (e.g. CI cancelling) unwinds like Ctrl-C, so brokers and clients are killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    certs_dir = tempfile.mkdtemp(prefix="strom-compat-certs-")
    try:
        try:
            args.certs = make_certs(certs_dir)
        except HarnessError as e:
            print(f"cannot make the certificates of the secured listeners: {e}", flush=True)
            print(f"0 passed, {len(selected)} failed", flush=True)
            return 1
        for client in selected:
            print(f"--- {client.name}: running", flush=True)
            row = run_client(client, args)
            rows.append(row)
            print_row(row, args)
    finally:
        shutil.rmtree(certs_dir, ignore_errors=True)
    if args.only:
        print("COMPATIBILITY.md not rewritten: --only ran a subset", flush=True)
    else:
        write_compatibility(rows, started)
    passed = sum(1 for r in rows if r.ok())
    print(f"{passed} passed, {len(rows) - passed} failed", flush=True)
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
