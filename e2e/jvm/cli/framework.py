"""How a check runs: the same body on Strom and on Kafka, at once, then compared.

A check's body gets a `CheckRun` for one side. It runs tools through `run.tool(...)`,
asserts with `run.expect(...)`, and every tool step is compared between the two sides
by its label: exit code and normalised output when the tool succeeds, exit code and
Kafka exception classes / error names when it fails (or a projection the check gives).
"""

import os
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field

from harness import read_text, run_program, stop_group

from . import normalise
from .sides import KAFKA, SINGLE, STROM

BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin")
TOOL_TIMEOUT = 60
# The environment of every tool; share_classes() adds a class-data archive to it.
TOOL_ENV = dict(os.environ)


def share_classes(archive, bootstrap):
    """Dumps the classes one admin tool loads into a CDS archive that later tools map.

    Most of a tool's second of start-up is loading and verifying the same client classes;
    mapping them from the archive saves about a third of its CPU on this small machine.
    Without the archive (the dump failed) the tools start as usual.
    """
    env = dict(os.environ, KAFKA_OPTS=f"-XX:ArchiveClassesAtExit={archive}")
    run_program([os.path.join(BIN, "kafka-topics"), "--bootstrap-server", bootstrap, "--list"],
                timeout=TOOL_TIMEOUT, cwd=os.path.dirname(archive), env=env)
    if os.path.exists(archive):
        TOOL_ENV["KAFKA_OPTS"] = (os.environ.get("KAFKA_OPTS", "") + f" -XX:SharedArchiveFile={archive}").strip()


@dataclass
class Check:
    name: str
    tool: str
    command: str  # as the COMPATIBILITY.md row shows it
    shape: str
    body: object


CHECKS = []


def check(name, tool, command, shape=SINGLE):
    """Registers body(run) as a check."""
    def register(body):
        if any(c.name == name for c in CHECKS):
            raise ValueError(f"duplicate check {name}")
        CHECKS.append(Check(name, tool, command, shape, body))
        return body

    return register


@dataclass
class ToolResult:
    argv: list
    rc: object  # int, or None when killed at the timeout
    out: list
    err: list
    seconds: float

    @property
    def text(self):
        return "\n".join(self.out + self.err)

    @property
    def errors(self):
        return normalise.exceptions(self.text)

    def tail(self, n=12):
        return "\n".join((self.out + [f"[stderr] {e}" for e in self.err])[-n:])


@dataclass
class Step:
    label: str
    command: str
    result: ToolResult
    compared: object  # what is compared with the other side, or None


@dataclass
class CheckRun:
    check: Check
    side: object
    workdir: str
    steps: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # label -> value compared explicitly

    @property
    def is_strom(self):
        return self.side.kind == STROM

    @property
    def slug(self):
        return "cli-" + self.check.name.replace(".", "-").replace("_", "-")

    @property
    def topic(self):
        return self.slug

    @property
    def group(self):
        return self.slug + "-group"

    def path(self, name):
        os.makedirs(self.workdir, exist_ok=True)
        return os.path.join(self.workdir, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def tool(self, tool, *args, label=None, stdin=None, timeout=TOOL_TIMEOUT, compare=True, project=None,
             bootstrap="--bootstrap-server"):
        """Runs e2e/jvm/bin/<tool> with args (after `bootstrap <servers>` unless bootstrap is None)."""
        argv = [os.path.join(BIN, tool)]
        if bootstrap:
            argv += [bootstrap, self.side.bootstrap]
        argv += [str(a) for a in args]
        res = run_program(argv, timeout=timeout, cwd=self.path("."), stdin_text=stdin, env=TOOL_ENV)
        result = ToolResult(argv, res.returncode, res.stdout_lines(),
                            [line for stream, line in res.lines if stream == "err"], res.seconds)
        label = label or f"{tool} #{len(self.steps) + 1}"
        if result.rc is None:
            self.failures.append(f"{label}: {tool} did not finish in {timeout}s (hang)")
        if not compare:
            compared = None
        elif project is not None:
            compared = project(result, self.side)
        else:
            compared = default_projection(result, self.side)
        self.steps.append(Step(label, " ".join([tool, *[str(a) for a in args]]), result, compared))
        return result

    def record(self, label, result, project=None):
        """Compares a result obtained while polling (with compare=False) under label."""
        compared = (project or default_projection)(result, self.side)
        self.steps.append(Step(label, " ".join(result.argv[1:]), result, compared))

    def expect(self, condition, message):
        if not condition:
            self.failures.append(message)
        return bool(condition)

    def ok(self, result, what=""):
        """Expects exit code 0."""
        return self.expect(result.rc == 0, f"{what or result.argv[0].rsplit('/', 1)[-1]} exited {result.rc}:\n{result.tail()}")

    def fails_with(self, result, *errors):
        """Expects a non-zero exit and one of the given exception classes / error names."""
        if not self.expect(result.rc not in (0, None), f"expected a failure, got exit {result.rc}:\n{result.tail()}"):
            return False
        return self.expect(any(e in result.errors for e in errors),
                           f"expected one of {errors}, got {result.errors}:\n{result.tail()}")

    def compare_value(self, label, value):
        self.extra[label] = value

    def background(self, tool, *args, bootstrap="--bootstrap-server"):
        """Starts a tool that keeps running (a consumer in a group); stop() ends it."""
        argv = [os.path.join(BIN, tool)]
        if bootstrap:
            argv += [bootstrap, self.side.bootstrap]
        argv += [str(a) for a in args]
        return Background(argv, self.path(f"bg-{len(self.steps)}-{tool}.log"))

    def compared(self):
        values = {s.label: s.compared for s in self.steps if s.compared is not None}
        values.update(self.extra)
        return values


def default_projection(result, side):
    if result.rc == 0:
        return {"exit": 0, "stdout": normalise.lines(result.out, side),
                "errors": normalise.exceptions("\n".join(result.err))}
    return {"exit": result.rc, "errors": result.errors}


def stdout_only(result, side):
    return {"exit": result.rc, "stdout": normalise.lines(result.out, side)}


def exit_and_errors(result, side):
    return {"exit": result.rc, "errors": result.errors}


class Background:
    """A tool process in its own process group, its output in a file."""

    def __init__(self, argv, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=TOOL_ENV, start_new_session=True)

    def output(self):
        return read_text(self.log_path)

    def stop(self):
        stop_group(self.proc, 15)
        self.log.close()


@dataclass
class Outcome:
    check: Check
    strom: CheckRun
    kafka: CheckRun
    differences: list  # (label, strom value, kafka value)
    seconds: float


def run_both(check, strom_side, kafka_side, workdir):
    """Runs one check on both sides concurrently and compares the steps."""
    runs = {
        STROM: CheckRun(check, strom_side, os.path.join(workdir, check.name, STROM)),
        KAFKA: CheckRun(check, kafka_side, os.path.join(workdir, check.name, KAFKA)),
    }

    def body(run):
        try:
            check.body(run)
        except Exception:  # a bug in the check or a tool the check could not parse: report, go on
            run.failures.append("check raised:\n" + traceback.format_exc(limit=4))

    start = time.monotonic()
    threads = [threading.Thread(target=body, args=(r,)) for r in runs.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    strom, kafka = runs[STROM].compared(), runs[KAFKA].compared()
    differences = []
    for label in list(strom) + [k for k in kafka if k not in strom]:
        if strom.get(label, "<missing step>") != kafka.get(label, "<missing step>"):
            differences.append((label, strom.get(label, "<missing step>"), kafka.get(label, "<missing step>")))
    return Outcome(check, runs[STROM], runs[KAFKA], differences, time.monotonic() - start)
